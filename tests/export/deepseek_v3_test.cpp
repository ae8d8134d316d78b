// HF DeepSeek-V3 export: the directory (config.json, tensors, tokenizer files), and
// model -> export -> load_model giving the runtime's logits.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/typed_values.h"
#include "export_models.h"
#include "io/deepseek_export.h"
#include "io/deepseek_read.h"
#include "io/safetensors_store.h"
#include "model/weights.h"
#include "tokenizer/load.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using test::DsKnobs;

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

void write_json(const std::string& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(2); }

std::string export_hf(const Model& m, const std::string& tag, DeepseekExportOptions o = {}) {
  const std::string dir = test::temp_dir(tag) + "/ds";
  export_deepseek(m, DeepseekFormat::HfDeepseekV3, dir, o);
  return dir;
}

TEST(DeepseekV3Export, RoundTripGivesTheLogits) {
  std::vector<std::pair<const char*, DsKnobs>> variants;
  variants.push_back({"q_lora, latent norm, untied, half, eps 1e-5", {}});
  DsKnobs b;
  b.q_lora = false;
  b.tied = true;
  b.layout = RopeLayout::Interleaved;
  b.eps = 1e-6;
  variants.push_back({"full q, tied, interleaved, eps 1e-6", b});
  DsKnobs c;
  c.kv_bias = true;
  variants.push_back({"latent / rope-key biases (attention_bias)", c});
  DsKnobs d;
  d.freq_offset = 1;
  d.tied = true;
  variants.push_back({"explicit frequencies -> linear rope_scaling", d});
  DsKnobs e;
  e.scaling.type = RopeScaling::Type::Llama3;
  e.scaling.factor = 8;
  e.scaling.original_max_position = 16;
  variants.push_back({"llama3 rope_scaling", e});
  DsKnobs f;
  f.nope = 0;
  variants.push_back({"no NoPE part", f});
  int i = 0;
  for (const auto& [name, k] : variants) {
    SCOPED_TRACE(name);
    const Model m = test::deepseek_like(k);
    const std::string dir = export_hf(m, "ds-rt" + std::to_string(i++));
    EXPECT_TRUE(is_deepseek_v3_dir(dir));
    const Model back = load_model(dir);
    EXPECT_EQ(back.format, "deepseek-v3");
    ASSERT_TRUE(back.config.mla);
    EXPECT_EQ(back.config.mla->rope_mode, RopeMode::Extend);
    test::expect_same_logits(m, back);
    // Naive and absorbed evaluation of the reloaded model agree too.
    const auto ids = test::test_ids(m.config.vocab_size);
    EXPECT_LE(test::max_abs_diff(test::all_logits(back, ids, MlaEval::Naive), test::all_logits(back, ids, MlaEval::Absorbed)),
              1e-5);
  }
}

TEST(DeepseekV3Export, ConfigJson) {
  const std::string dir = export_hf(test::deepseek_like(), "ds-config");
  const auto j = read_json(dir + "/config.json");
  EXPECT_EQ(j["model_type"], "deepseek_v3");
  EXPECT_EQ(j["architectures"], nlohmann::json::array({"DeepseekV3ForCausalLM"}));
  EXPECT_EQ(j["num_attention_heads"], 4);
  EXPECT_EQ(j["num_key_value_heads"], 4);
  EXPECT_EQ(j["qk_nope_head_dim"], 16);
  EXPECT_EQ(j["qk_rope_head_dim"], 8);
  EXPECT_EQ(j["v_head_dim"], 16);
  EXPECT_EQ(j["kv_lora_rank"], 24);
  EXPECT_EQ(j["q_lora_rank"], 32);
  EXPECT_EQ(j["first_k_dense_replace"], 2);
  EXPECT_EQ(j["num_hidden_layers"], 2);
  EXPECT_EQ(j["n_routed_experts"], 0);
  EXPECT_EQ(j["rope_interleave"], true);
  EXPECT_EQ(j["rms_norm_eps"], 1e-6);
  EXPECT_EQ(j["rope_theta"], 10000.0);
  EXPECT_TRUE(j["rope_scaling"].is_null());
  EXPECT_EQ(j["attention_bias"], false);
  EXPECT_EQ(j["tie_word_embeddings"], false);
  EXPECT_EQ(j["hidden_act"], "silu");
  EXPECT_EQ(j["intermediate_size"], 96);
  EXPECT_EQ(j["max_position_embeddings"], 256);
  EXPECT_FALSE(j.contains("head_dim"));  // DeepseekV3Config sets head_dim = qk_rope_head_dim itself
  EXPECT_FALSE(j.contains("mla"));       // not this project's MLA format

  DsKnobs k;
  k.q_lora = false;
  k.tied = true;
  k.freq_offset = 1;
  k.kv_bias = true;
  const auto j2 = read_json(export_hf(test::deepseek_like(k), "ds-config2") + "/config.json");
  EXPECT_TRUE(j2["q_lora_rank"].is_null());
  EXPECT_EQ(j2["tie_word_embeddings"], true);
  EXPECT_EQ(j2["attention_bias"], true);
  EXPECT_EQ(j2["rope_scaling"]["rope_type"], "linear");
}

TEST(DeepseekV3Export, TensorsAndRows) {
  DsKnobs k;
  k.eps = 1e-6;             // no residual rescale: rows compare as they are
  k.softmax_scale = 1.0 / std::sqrt(24.0);
  const Model m = test::deepseek_like(k);
  const std::string dir = export_hf(m, "ds-tensors");
  SafetensorsStore st(dir);
  const std::string p = "model.layers.1.self_attn.";
  EXPECT_EQ(st.get(p + "q_a_proj.weight").shape, (Shape{32, 64}));
  EXPECT_EQ(st.get(p + "q_a_layernorm.weight").shape, (Shape{32}));
  EXPECT_EQ(st.get(p + "q_b_proj.weight").shape, (Shape{4 * 24, 32}));
  EXPECT_EQ(st.get(p + "kv_a_proj_with_mqa.weight").shape, (Shape{24 + 8, 64}));
  EXPECT_EQ(st.get(p + "kv_a_layernorm.weight").shape, (Shape{24}));
  EXPECT_EQ(st.get(p + "kv_b_proj.weight").shape, (Shape{4 * (16 + 16), 24}));
  EXPECT_EQ(st.get(p + "o_proj.weight").shape, (Shape{64, 64}));
  EXPECT_FALSE(st.contains(p + "q_proj.weight"));
  EXPECT_FALSE(st.contains(p + "kv_a_proj_with_mqa.bias"));
  EXPECT_TRUE(st.contains("lm_head.weight"));
  EXPECT_TRUE(st.contains("model.layers.0.mlp.gate_proj.weight"));

  // kv_a rows [latent | k_pe], k_pe rows interleaved; kv_b per head [k_nope | v].
  const MlaLayerWeights& w = m.weights.layers[1].mla;
  const Tensor kv_a = st.to_float(p + "kv_a_proj_with_mqa.weight");
  const Tensor kr = permute_rope_rows(w.w_kr, 8, false).to_f32();
  EXPECT_TRUE(std::equal(w.w_dkv.ptr(), w.w_dkv.ptr() + w.w_dkv.numel(), kv_a.data.begin()));
  EXPECT_TRUE(std::equal(kr.data.begin(), kr.data.end(), kv_a.data.begin() + 24 * 64));
  const Tensor kv_b = st.to_float(p + "kv_b_proj.weight");
  for (int64_t h = 0; h < 4; ++h) {
    EXPECT_TRUE(std::equal(w.w_uk.ptr() + h * 16 * 24, w.w_uk.ptr() + (h + 1) * 16 * 24, kv_b.ptr() + h * 32 * 24));
    EXPECT_TRUE(std::equal(w.w_uv.ptr() + h * 16 * 24, w.w_uv.ptr() + (h + 1) * 16 * 24, kv_b.ptr() + (h * 32 + 16) * 24));
  }

  k.tied = true;
  k.q_lora = false;
  SafetensorsStore st2(export_hf(test::deepseek_like(k), "ds-tensors2"));
  EXPECT_FALSE(st2.contains("lm_head.weight"));
  EXPECT_EQ(st2.get(p + "q_proj.weight").shape, (Shape{4 * 24, 64}));
}

TEST(DeepseekV3Export, ShardedAndHalfPrecision) {
  const Model m = test::deepseek_like();
  DeepseekExportOptions o;
  o.max_shard_bytes = 40000;
  const std::string dir = export_hf(m, "ds-shards", o);
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  test::expect_same_logits(m, load_model(dir));

  o = {};
  o.dtype = "BF16";
  const std::string bf = export_hf(m, "ds-bf16", o);
  EXPECT_EQ(read_json(bf + "/config.json")["torch_dtype"], "bfloat16");
  const auto ids = test::test_ids(m.config.vocab_size);
  const Tensor a = test::all_logits(m, ids), b = test::all_logits(load_model(bf), ids);
  EXPECT_LE(test::max_abs_diff(a, b), 0.05 * test::max_abs(a));
}

TEST(DeepseekV3Export, TokenizerFilesTravel) {
  DsKnobs k;
  k.vocab = 600;
  Model m = test::deepseek_like(k);
  m.tokenizer = load_tokenizer(test::source_path("tests/fixtures/tokenizer/llama2_style"));
  ASSERT_LE(m.tokenizer->vocab_size(), m.config.vocab_size);
  const std::string dir = export_hf(m, "ds-tok");
  EXPECT_TRUE(fs::exists(dir + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir + "/tokenizer_config.json"));
  const Model back = load_model(dir);
  ASSERT_TRUE(back.tokenizer);
  const std::string text = "Once upon a time, there was a little dog named Max.";
  EXPECT_EQ(back.tokenizer->encode(text), m.tokenizer->encode(text));
}

// What transformers computes when rms_norm_eps is not 1e-6: its latent norms still
// use 1e-6, so the reader rescales the latent and q_a projections.
TEST(DeepseekV3Read, LatentNormsAtTransformersEps) {
  DsKnobs k;
  k.eps = 1e-6;
  const Model m = test::deepseek_like(k);
  const std::string dir = export_hf(m, "ds-eps");
  auto j = read_json(dir + "/config.json");
  j["rms_norm_eps"] = 1e-5;
  write_json(dir + "/config.json", j);
  const Model a = load_model(dir);
  const double beta = std::sqrt(10.0);
  const Tensor w0 = m.weights.layers[0].mla.w_dkv.to_f32();
  const Tensor w1 = a.weights.layers[0].mla.w_dkv.to_f32();
  for (size_t i = 0; i < w0.data.size(); i += 97) EXPECT_NEAR(w1.data[i], w0.data[i] * beta, 1e-6);
  EXPECT_NEAR(a.weights.layers[0].mla.wq_a.to_f32().data[5], m.weights.layers[0].mla.wq_a.to_f32().data[5] * beta, 1e-6);
  EXPECT_EQ(test::f32_values(a.weights.layers[0].mla.kv_norm), test::f32_values(m.weights.layers[0].mla.kv_norm));
}

TEST(DeepseekV3Read, RefusesWhatItCannotRun) {
  const std::string dir = export_hf(test::deepseek_like(), "ds-bad");
  const auto good = read_json(dir + "/config.json");
  auto with = [&](const char* key, const nlohmann::json& v) {
    auto j = good;
    j[key] = v;
    write_json(dir + "/config.json", j);
    return test::error_of([&] { load_model(dir); });
  };
  std::string e = with("first_k_dense_replace", 1);
  EXPECT_NE(e.find("mixture-of-experts"), std::string::npos) << e;
  e = with("num_key_value_heads", 1);
  EXPECT_NE(e.find("num_key_value_heads"), std::string::npos) << e;
  e = with("rope_scaling", nlohmann::json{{"rope_type", "yarn"}, {"factor", 4.0}});
  EXPECT_NE(e.find("yarn"), std::string::npos) << e;
  e = with("kv_lora_rank", 20);
  EXPECT_NE(e.find("kv_a_proj_with_mqa"), std::string::npos) << e;
  write_json(dir + "/config.json", good);
  EXPECT_NO_THROW(load_model(dir));
}

}  // namespace
}  // namespace mlar
