// The MLA directory format: what a written directory holds, exact round trips
// (plain, absorbed, sharded, DeepSeek layout), and clear errors for bad directories.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "common/typed_values.h"
#include "convert/absorb.h"
#include "convert/repeat.h"
#include "convert_sources.h"
#include "expect_error.h"
#include "io/load_model.h"
#include "io/mla_model.h"
#include "io/safetensors_store.h"
#include "io/safetensors_writer.h"
#include "random_mla.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using test::error_of;

std::string write_dir(const Model& m, const std::string& tag, const MlaWriteOptions& o = {}) {
  const std::string dir = test::temp_dir(tag) + "/mla";
  fs::create_directory(dir);
  write_mla_model(m, dir, o);
  return dir;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

void write_json(const std::string& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(2); }

void expect_same_model(const Model& a, const Model& b) {
  EXPECT_EQ(config_to_json(a.config), config_to_json(b.config));
  ASSERT_EQ(a.weights.layers.size(), b.weights.layers.size());
  EXPECT_EQ(test::f32_values(a.weights.embed), test::f32_values(b.weights.embed));
  EXPECT_EQ(test::f32_values(a.weights.final_norm), test::f32_values(b.weights.final_norm));
  EXPECT_EQ(test::f32_values(a.weights.lm_head), test::f32_values(b.weights.lm_head));
  for (size_t l = 0; l < a.weights.layers.size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const LayerWeights &x = a.weights.layers[l], &y = b.weights.layers[l];
    for (const MlaTensorSlot& s : mla_layer_slots(a.config, int64_t(l))) {
      EXPECT_EQ((x.mla.*s.member).shape, (y.mla.*s.member).shape) << s.name;
      EXPECT_EQ(test::f32_values(x.mla.*s.member), test::f32_values(y.mla.*s.member)) << s.name;
    }
    EXPECT_EQ(test::f32_values(x.attn_norm), test::f32_values(y.attn_norm));
    EXPECT_EQ(test::f32_values(x.w_down), test::f32_values(y.w_down));
    EXPECT_TRUE(y.wq.empty() && y.wk.empty() && y.wv.empty() && y.wo.empty());
  }
}

TEST(MlaFormat, DirectoryHoldsConfigTensorsAndTokenizer) {
  const Model& g = test::convert_source("stories-interleaved");  // the .bin's rows, as stored
  const Model m = convert_repeat(g);
  MlaWriteOptions o;
  o.converted_from = {{"path", "stories260K.bin"}, {"format", "llama2c"}};
  const std::string dir = write_dir(m, "layout", o);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"})
    EXPECT_TRUE(fs::exists(fs::path(dir) / f)) << f;
  EXPECT_TRUE(fs::exists(fs::path(dir) / "tokenizer.json") || fs::exists(fs::path(dir) / "tokenizer.model"));
  const auto j = read_json(dir + "/config.json");
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["num_key_value_heads"], 4);
  EXPECT_EQ(j["head_dim"], 8);
  EXPECT_EQ(j["mla"]["rope_mode"], "repeat");
  EXPECT_EQ(j["mla"]["rope_layout"], "interleaved");  // the source's rows, never reordered
  EXPECT_EQ(j["mla"]["kv_lora_rank"], 32);
  EXPECT_EQ(j["mla"]["num_rope_heads"], 4);
  EXPECT_EQ(j["mla_retrofit"]["format_version"], 1);
  EXPECT_EQ(j["mla_retrofit"]["converted_from"]["format"], "llama2c");
  EXPECT_TRUE(is_mla_model_dir(dir));

  SafetensorsStore store(dir);
  const std::string p = "model.layers.0.self_attn.";
  EXPECT_EQ(store.get(p + "q_proj.weight").shape, (Shape{64, 64}));
  EXPECT_EQ(store.get(p + "q_rope_up.weight").shape, (Shape{8, 32, 8}));
  EXPECT_EQ(store.get(p + "kv_a_proj.weight").shape, (Shape{32, 64}));
  EXPECT_EQ(store.get(p + "k_rope_proj.weight").shape, (Shape{32, 64}));
  EXPECT_EQ(store.get(p + "v_up_proj.weight").shape, (Shape{64, 32}));
  EXPECT_EQ(store.get(p + "o_proj.weight").shape, (Shape{64, 64}));
  for (const char* absent : {"k_proj.weight", "v_proj.weight", "k_up_proj.weight", "kv_a_layernorm.weight"})
    EXPECT_FALSE(store.contains(p + absent)) << absent;
  EXPECT_TRUE(store.contains("model.layers.4.mlp.down_proj.weight"));
  EXPECT_FALSE(store.contains("lm_head.weight"));  // tied

  const Model back = load_model(dir);
  EXPECT_EQ(back.format, "mla");
  EXPECT_EQ(back.config.rope_layout, RopeLayout::Interleaved);  // an MLA model is loaded as stored
  EXPECT_EQ(back.file_rope_layout, RopeLayout::Interleaved);
  ASSERT_TRUE(back.tokenizer);
  EXPECT_EQ(back.tokenizer->encode("Once upon a time"), g.tokenizer->encode("Once upon a time"));
}

TEST(MlaFormat, RoundTripIsExactForEverySourceAndForm) {
  for (const auto& name : test::convert_source_names())
    for (bool absorbed : {false, true}) {
      SCOPED_TRACE(name + (absorbed ? " absorbed" : ""));
      Model m = convert_repeat(test::convert_source(name));
      if (absorbed) absorb(m);
      const Model back = load_model(write_dir(m, "rt"));
      expect_same_model(m, back);
    }
}

TEST(MlaFormat, QwenBiasesAndHalfLayoutAreKept) {
  const Model m = convert_repeat(test::convert_source("qwen2"));
  const std::string dir = write_dir(m, "qwen");
  SafetensorsStore store(dir);
  const std::string p = "model.layers.1.self_attn.";
  for (const char* b : {"q_proj.bias", "kv_a_proj.bias", "k_rope_proj.bias"}) EXPECT_TRUE(store.contains(p + b)) << b;
  const auto j = read_json(dir + "/config.json");
  EXPECT_EQ(j["model_type"], "qwen2");
  EXPECT_EQ(j["mla"]["rope_layout"], "half");
}

TEST(MlaFormat, ShardedRoundTrip) {
  const Model m = convert_repeat(test::convert_source("stories-gguf"));
  MlaWriteOptions o;
  o.max_shard_bytes = 200 * 1024;
  const std::string dir = write_dir(m, "shards", o);
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  expect_same_model(m, load_model(dir));
}

TEST(MlaFormat, DeepSeekLayoutRoundTrip) {
  for (bool absorbed : {false, true}) {
    Model m = test::random_deepseek_like_mla(2);
    if (absorbed) absorb(m);
    const std::string dir = write_dir(m, "ds");
    SafetensorsStore store(dir);
    const std::string p = "model.layers.0.self_attn.";
    for (const char* t : {"q_a_proj.weight", "q_a_layernorm.weight", "q_b_proj.weight", "q_b_proj.bias",
                          "kv_a_layernorm.weight"})
      EXPECT_TRUE(store.contains(p + t)) << t;
    EXPECT_EQ(store.contains(p + "k_up_proj.weight"), !absorbed);
    EXPECT_FALSE(store.contains(p + "q_proj.weight"));
    expect_same_model(m, load_model(dir));
  }
}

TEST(MlaFormat, Bf16OnDisk) {
  const Model m = convert_repeat(test::convert_source("llama"));
  MlaWriteOptions o;
  o.dtype = "BF16";
  const std::string dir = write_dir(m, "bf16", o);
  EXPECT_EQ(read_json(dir + "/config.json")["torch_dtype"], "bfloat16");
  const Model back = load_model(dir);
  EXPECT_EQ(test::f32_values(back.weights.layers[0].mla.wqr), test::f32_values(m.weights.layers[0].mla.wqr));  // 0 and 1 are exact
}

TEST(MlaFormat, WriterRefusesAGqaModel) {
  const std::string dir = test::temp_dir("gqa-out");
  EXPECT_HAS(error_of([&] { write_mla_model(test::convert_source("llama"), dir); }), "not MLA");
}

// A written directory whose config.json is edited by `edit`; returns the load error.
std::string load_error_after(const std::function<void(nlohmann::json&)>& edit) {
  const std::string dir = write_dir(convert_repeat(test::convert_source("stories-bin")), "bad");
  auto j = read_json(dir + "/config.json");
  edit(j);
  write_json(dir + "/config.json", j);
  return error_of([&] { load_model(dir); });
}

TEST(MlaFormat, BadConfigsNameTheFile) {
  const auto cases = std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>>{
      {[](auto& j) { j["mla_retrofit"]["format_version"] = 2; },
       "mla_retrofit.format_version 2 is not supported (this build reads version 1)"},
      {[](auto& j) { j.erase("mla_retrofit"); }, "no \"mla_retrofit\" object"},
      {[](auto& j) { j["mla"]["rope_layout"] = "zigzag"; }, "mla.rope_layout \"zigzag\" is not"},
      {[](auto& j) { j["mla"]["rope_mode"] = "sideways"; }, "mla.rope_mode 'sideways' is not repeat or extend"},
      {[](auto& j) { j["mla"].erase("kv_lora_rank"); }, "mla.kv_lora_rank is missing"},
      {[](auto& j) { j["mla"]["qk_rope_head_dim"] = 7; }, "mla.qk_rope_head_dim must be positive and even"},
      {[](auto& j) { j["mla"] = 3; }, "the \"mla\" section must be an object"},
      {[](auto& j) { j["mla"]["layer_kv_lora_rank"] = {32, 32}; }, "mla.layer_kv_lora_rank has 2 entries for 5 layers"},
      {[](auto& j) { j["model_type"] = "gpt2"; }, "model_type 'gpt2' is not supported"},
  };
  for (const auto& [edit, want] : cases) {
    const std::string msg = load_error_after(edit);
    EXPECT_HAS(msg, want);
    EXPECT_HAS(msg, "config.json");
  }
}

TEST(MlaFormat, TensorsThatDoNotFitTheConfigAreRefused) {
  // absorbed flipped on: q_proj has the un-absorbed shape.
  EXPECT_HAS(load_error_after([](auto& j) { j["mla"]["absorbed"] = true; }),
             "tensor model.layers.0.self_attn.q_proj.weight has shape [64, 64], expected [512, 64]");
}

TEST(MlaFormat, MissingAndUnexpectedTensors) {
  const Model m = convert_repeat(test::convert_source("stories-bin"));
  // latent_norm switched on: the norm weight is missing.
  EXPECT_HAS(load_error_after([](auto& j) { j["mla"]["latent_norm"] = true; }),
             "missing tensor model.layers.0.self_attn.kv_a_layernorm.weight");

  // A GQA key left in the file.
  const std::string dir = write_dir(m, "extra");
  {
    SafetensorsStore store(dir);
    std::vector<TypedTensor> keep;
    keep.reserve(store.names().size() + 1);
    std::vector<NamedTensor> ts;
    for (const auto& n : store.names()) {
      keep.push_back(store.to_float(n));
      ts.push_back({n, &keep.back()});
    }
    keep.push_back(Tensor({32, 64}));
    ts.push_back({"model.layers.2.self_attn.k_proj.weight", &keep.back()});
    write_safetensors(dir + "/model.safetensors.new", ts, DType::F32);
  }
  fs::rename(dir + "/model.safetensors.new", dir + "/model.safetensors");
  const std::string msg = error_of([&] { load_model(dir); });
  EXPECT_HAS(msg, "unexpected tensor model.layers.2.self_attn.k_proj.weight");
  EXPECT_HAS(msg, "model.safetensors");
}

}  // namespace
}  // namespace mlar
