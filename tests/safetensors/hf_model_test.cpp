// HF directories: write_hf_llama -> read_hf_model round trips and broken directories.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "common/typed_values.h"
#include "helpers.h"
#include "io/hf_model.h"
#include "io/llama2c.h"
#include "io/safetensors_store.h"
#include "io/safetensors_writer.h"
#include "tokenizer/load.h"
#include "util/half.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace mlar;
using namespace mlar::test;

namespace {

void expect_same(const TypedTensor& a, const TypedTensor& b, const std::string& what) {
  EXPECT_EQ(a.shape, b.shape) << what;
  EXPECT_EQ(f32_values(a), f32_values(b)) << what;
}

// `got` equals `want`, with q/k rows (and biases) of `want` permuted to half if `permuted`.
void expect_weights(const ModelWeights& got, const ModelWeights& want, bool permuted, int64_t head_dim) {
  auto qk = [&](const TypedTensor& t) { return permuted ? permute_rope_rows(t, head_dim, true) : t; };
  expect_same(got.embed, want.embed, "embed");
  expect_same(got.final_norm, want.final_norm, "final_norm");
  expect_same(got.lm_head, want.lm_head, "lm_head");
  ASSERT_EQ(got.layers.size(), want.layers.size());
  for (size_t i = 0; i < got.layers.size(); ++i) {
    const auto &g = got.layers[i], &w = want.layers[i];
    const std::string l = "layer " + std::to_string(i) + " ";
    expect_same(g.attn_norm, w.attn_norm, l + "attn_norm");
    expect_same(g.wq, qk(w.wq), l + "wq");
    expect_same(g.wk, qk(w.wk), l + "wk");
    expect_same(g.wv, w.wv, l + "wv");
    expect_same(g.wo, w.wo, l + "wo");
    expect_same(g.bq, qk(w.bq), l + "bq");
    expect_same(g.bk, qk(w.bk), l + "bk");
    expect_same(g.bv, w.bv, l + "bv");
    expect_same(g.ffn_norm, w.ffn_norm, l + "ffn_norm");
    expect_same(g.w_gate, w.w_gate, l + "w_gate");
    expect_same(g.w_up, w.w_up, l + "w_up");
    expect_same(g.w_down, w.w_down, l + "w_down");
  }
}

json read_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

// Rewrites dir's weights as one model.safetensors without `drop` and with `replace`.
void rewrite_weights(const fs::path& dir, const std::string& drop, const std::string& replace = "",
                     const Tensor* with = nullptr) {
  SafetensorsStore s(dir.string());
  std::vector<TypedTensor> ts;
  std::vector<std::string> names;
  for (const auto& n : s.names())
    if (n != drop) {
      names.push_back(n);
      ts.push_back(n == replace ? *with : s.to_float(n));
    }
  std::vector<NamedTensor> named;
  for (size_t i = 0; i < ts.size(); ++i) named.push_back({names[i], &ts[i]});
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
      fs::remove(e.path());
  write_safetensors_model(dir, named, DType::F32, 1ull << 40);
}

}  // namespace

TEST(HfModel, RoundTripF32) {
  ModelConfig c = small_config();
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 2.0;
  Model m = random_model(c, 1);
  const fs::path dir = temp_dir("hf-f32");
  write_hf_llama(m, dir);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "config.json"));

  json g = read_json(dir / "generation_config.json");
  EXPECT_EQ(g["bos_token_id"], 1);
  EXPECT_EQ(g["eos_token_id"], 2);
  json cj = read_json(dir / "config.json");
  EXPECT_EQ(cj["architectures"], json({"LlamaForCausalLM"}));
  EXPECT_EQ(cj["torch_dtype"], "float32");
  EXPECT_EQ(cj["rope_scaling"], json({{"rope_type", "linear"}, {"factor", 2.0}}));

  Model r = read_hf_model(dir.string());
  EXPECT_EQ(r.format, "hf");
  EXPECT_EQ(r.source, dir.string());
  EXPECT_EQ(r.tokenizer, nullptr);
  EXPECT_EQ(r.config.rope_layout, RopeLayout::Half);
  EXPECT_EQ(r.config.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_EQ(r.config.head_dim, 8);
  EXPECT_EQ(r.config.num_kv_heads, 2);
  expect_weights(r.weights, m.weights, false, c.head_dim);
}

TEST(HfModel, InterleavedModelComesBackHalf) {
  ModelConfig c = small_config();
  c.rope_layout = RopeLayout::Interleaved;
  c.attention_bias = true;  // biases are permuted too
  Model m = random_model(c, 2);
  const fs::path dir = temp_dir("hf-inter");
  write_hf_llama(m, dir);
  Model r = read_hf_model(dir.string());
  EXPECT_EQ(r.config.rope_layout, RopeLayout::Half);
  EXPECT_TRUE(r.config.attention_bias);
  expect_weights(r.weights, m.weights, true, c.head_dim);
  // Llama's attention_bias puts a bias on o_proj as well: written as zeros.
  SafetensorsStore s(dir.string());
  Tensor ob = s.to_float("model.layers.1.self_attn.o_proj.bias");
  EXPECT_EQ(ob.data, std::vector<float>(32, 0.0f));

  // Converting back gives the source rows.
  convert_rope_layout(r.config, r.weights, RopeLayout::Interleaved);
  expect_weights(r.weights, m.weights, false, c.head_dim);
}

TEST(HfModel, TiedEmbeddings) {
  ModelConfig c = small_config();
  c.tie_word_embeddings = true;
  Model m = random_model(c, 3);
  const fs::path dir = temp_dir("hf-tied");
  write_hf_llama(m, dir);
  EXPECT_FALSE(SafetensorsStore(dir.string()).contains("lm_head.weight"));
  Model r = read_hf_model(dir.string());
  EXPECT_TRUE(r.config.tie_word_embeddings);
  EXPECT_TRUE(r.weights.lm_head.empty());
  expect_weights(r.weights, m.weights, false, c.head_dim);

  // A tied checkpoint that still carries lm_head.weight: ignored.
  const TypedTensor extra = random_tensor({c.vocab_size, c.hidden_size}, 77);
  {
    SafetensorsStore s(dir.string());
    std::vector<TypedTensor> ts;
    std::vector<NamedTensor> named;
    for (const auto& n : s.names()) ts.push_back(s.to_float(n));
    auto names = s.names();
    for (size_t i = 0; i < ts.size(); ++i) named.push_back({names[i], &ts[i]});
    named.push_back({"lm_head.weight", &extra});
    write_safetensors_model(dir, named, DType::F32, 1ull << 40, /*force=*/true);
  }
  Model r2 = read_hf_model(dir.string());
  EXPECT_TRUE(r2.weights.lm_head.empty());
}

TEST(HfModel, BF16AndSharded) {
  ModelConfig c = small_config();
  Model m = random_model(c, 4);
  const fs::path dir = temp_dir("hf-bf16");
  HfWriteOptions o;
  o.dtype = "BF16";
  o.max_shard_bytes = 4000;
  write_hf_llama(m, dir, o);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  EXPECT_EQ(read_json(dir / "config.json")["torch_dtype"], "bfloat16");
  Model r = read_hf_model(dir.string());
  Model want = m;
  auto round = [](TypedTensor& t) {
    float* x = t.ptr();
    for (int64_t i = 0; i < t.numel(); ++i) x[i] = bf16_to_f32(f32_to_bf16(x[i]));
  };
  round(want.weights.embed);
  round(want.weights.final_norm);
  round(want.weights.lm_head);
  for (auto& L : want.weights.layers)
    for (TypedTensor* t : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down})
      round(*t);
  expect_weights(r.weights, want.weights, false, c.head_dim);
}

TEST(HfModel, F16) {
  Model m = random_model(small_config(), 5);
  const fs::path dir = temp_dir("hf-f16");
  HfWriteOptions o;
  o.dtype = "F16";
  write_hf_llama(m, dir, o);
  Model r = read_hf_model(dir.string());
  EXPECT_EQ(SafetensorsStore(dir.string()).get("model.norm.weight").dtype, DType::F16);
  const std::vector<float> a = f32_values(r.weights.layers[1].w_down);
  const std::vector<float> b = f32_values(m.weights.layers[1].w_down);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], f16_to_f32(f32_to_f16(b[i])));
}

TEST(HfModel, ReadsQwen2AndMistralDirectories) {
  // Directories as transformers saves them (tensor names shared with Llama).
  for (const char* family : {"qwen2", "mistral"}) {
    ModelConfig c = small_config();
    c.attention_bias = std::string(family) == "qwen2";
    Model m = random_model(c, 6);
    const fs::path dir = temp_dir(std::string("hf-") + family);
    write_hf_llama(m, dir);
    json cj = read_json(dir / "config.json");
    cj["model_type"] = family;
    if (c.attention_bias) cj.erase("attention_bias");
    std::ofstream(dir / "config.json") << cj.dump();
    if (c.attention_bias) rewrite_weights(dir, "model.layers.0.self_attn.o_proj.bias");
    Model r = read_hf_model(dir.string());
    EXPECT_EQ(r.config.arch, family);
    EXPECT_EQ(r.config.attention_bias, c.attention_bias);
    expect_weights(r.weights, m.weights, false, c.head_dim);
  }
}

TEST(HfModelErrors, MissingTensor) {
  Model m = random_model(small_config(), 7);
  const fs::path dir = temp_dir("hf-missing");
  write_hf_llama(m, dir);
  rewrite_weights(dir, "model.layers.1.mlp.up_proj.weight");
  EXPECT_HAS(error_of([&] { read_hf_model(dir.string()); }),
             dir.string() + ": missing tensor model.layers.1.mlp.up_proj.weight");
  const fs::path dir2 = temp_dir("hf-missing-head");
  write_hf_llama(m, dir2);
  rewrite_weights(dir2, "lm_head.weight");
  EXPECT_HAS(error_of([&] { read_hf_model(dir2.string()); }), dir2.string() + ": missing tensor lm_head.weight");
}

TEST(HfModelErrors, MissingBias) {
  ModelConfig c = small_config();
  c.attention_bias = true;
  Model m = random_model(c, 8);
  const fs::path dir = temp_dir("hf-missing-bias");
  write_hf_llama(m, dir);
  rewrite_weights(dir, "model.layers.0.self_attn.k_proj.bias");
  EXPECT_HAS(error_of([&] { read_hf_model(dir.string()); }),
             dir.string() + ": missing tensor model.layers.0.self_attn.k_proj.bias");
}

TEST(HfModelErrors, NonZeroOprojBiasRefused) {
  ModelConfig c = small_config();
  c.attention_bias = true;
  Model m = random_model(c, 9);
  const fs::path dir = temp_dir("hf-obias");
  write_hf_llama(m, dir);
  Tensor b = random_tensor({c.hidden_size}, 5);
  rewrite_weights(dir, "", "model.layers.1.self_attn.o_proj.bias", &b);
  EXPECT_HAS(error_of([&] { read_hf_model(dir.string()); }),
             "model.layers.1.self_attn.o_proj.bias is non-zero; o_proj biases are not supported");
}

TEST(HfModelErrors, WrongShape) {
  Model m = random_model(small_config(), 10);
  const fs::path dir = temp_dir("hf-shape");
  write_hf_llama(m, dir);
  Tensor bad = random_tensor({40, 31}, 1);
  rewrite_weights(dir, "", "model.layers.0.mlp.gate_proj.weight", &bad);
  EXPECT_HAS(error_of([&] { read_hf_model(dir.string()); }),
             "model.safetensors: tensor model.layers.0.mlp.gate_proj.weight has shape [40, 31], expected [40, 32]");
}

TEST(HfModelErrors, InconsistentConfig) {
  Model m = random_model(small_config(), 11);
  const fs::path dir = temp_dir("hf-badcfg");
  write_hf_llama(m, dir);
  json cj = read_json(dir / "config.json");
  cj["num_key_value_heads"] = 3;
  std::ofstream(dir / "config.json") << cj.dump();
  EXPECT_HAS(error_of([&] { read_hf_model(dir.string()); }),
             (dir / "config.json").string() + ": num_key_value_heads (3) does not divide num_attention_heads (4)");
  write_bytes(dir / "config.json", "{\"model_type\": ");
  EXPECT_HAS(error_of([&] { read_hf_model(dir.string()); }), (dir / "config.json").string() + ": malformed JSON");
  fs::remove(dir / "config.json");
  EXPECT_HAS(error_of([&] { read_hf_model(dir.string()); }), dir.string() + ": no config.json");
}

TEST(HfModelErrors, TokenizerFileIsLoaded) {
  // A tokenizer file in the directory goes through load_tokenizer, whose errors surface.
  Model m = random_model(small_config(), 12);
  const fs::path dir = temp_dir("hf-tok");
  write_hf_llama(m, dir);
  write_bytes(dir / "tokenizer.json", "not json");
  EXPECT_THROW(read_hf_model(dir.string()), Error);
}

TEST(HfModelErrors, WriterRefusesBadOptionsAndModels) {
  Model m = random_model(small_config(), 13);
  const fs::path dir = temp_dir("hf-wbad");
  HfWriteOptions o;
  o.dtype = "Q4";
  EXPECT_HAS(error_of([&] { write_hf_llama(m, dir, o); }), "unsupported output dtype 'Q4'");
  m.weights.layers[0].wv = Tensor(Shape{3, 3});
  EXPECT_HAS(error_of([&] { write_hf_llama(m, dir); }), "layers.0.wv has shape [3, 3]");
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(HfModel, TokenizerTravelsWithTheModel) {
  ModelConfig c = small_config();
  c.vocab_size = 512;
  Model m = random_model(c, 14);
  m.tokenizer = load_tokenizer(data_path("models/stories260K/tok512.model"));
  const fs::path dir = temp_dir("hf-tokenizer");
  write_hf_llama(m, dir);
  Model r = read_hf_model(dir.string());
  ASSERT_NE(r.tokenizer, nullptr);
  const std::string text = "Once upon a time, there was a little girl.";
  EXPECT_EQ(r.tokenizer->encode(text), m.tokenizer->encode(text));
  EXPECT_EQ(r.tokenizer->bos_id(), m.tokenizer->bos_id());
  EXPECT_EQ(r.tokenizer->eos_id(), m.tokenizer->eos_id());
}

TEST(HfModel, Stories260KFromLlama2cRoundTrips) {
  // A real (interleaved, tied) checkpoint through the HF writer and reader.
  Model m = read_llama2c(data_path("models/stories260K/stories260K.bin"));
  ASSERT_EQ(m.config.rope_layout, RopeLayout::Interleaved);
  const fs::path dir = temp_dir("hf-stories");
  write_hf_llama(m, dir);
  Model r = read_hf_model(dir.string());
  EXPECT_EQ(r.config.hidden_size, 64);
  EXPECT_EQ(r.config.num_kv_heads, 4);
  EXPECT_EQ(r.config.head_dim, 8);
  EXPECT_TRUE(r.config.tie_word_embeddings);
  expect_weights(r.weights, m.weights, true, m.config.head_dim);
}
