// config.json parsing (llama, qwen2, mistral) and the Llama config writer.
#include <nlohmann/json.hpp>

#include "helpers.h"
#include "io/hf_model.h"

using json = nlohmann::json;
using namespace mlar;
using namespace mlar::test;

namespace {

// Llama-3.1-8B's config.json (values as published).
json llama31() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

// Qwen2.5-0.5B's config.json.
json qwen25() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": true,
    "use_sliding_window": false, "vocab_size": 151936})");
}

// Mistral-7B-v0.1's config.json.
json mistral() {
  return json::parse(R"({
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})");
}

json tiny(const std::string& type) {
  return {{"model_type", type},     {"hidden_size", 64},         {"intermediate_size", 128},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"vocab_size", 100}};
}

std::string config_error(const json& j) {
  std::string msg = error_of([&] { parse_hf_config(j, "dir/config.json"); });
  EXPECT_EQ(msg.rfind("dir/config.json: ", 0), 0u) << msg;
  return msg;
}

}  // namespace

TEST(HfConfig, Llama31WithLlama3RopeScaling) {
  ModelConfig c = parse_hf_config(llama31(), "config.json");
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position, 8192);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.rope_layout, RopeLayout::Half);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_id, 128001);  // first of the list
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(HfConfig, ExplicitAndNullHeadDim) {
  json j = tiny("llama");
  j["head_dim"] = 32;  // q_dim 128 != hidden 64, as in Qwen3 / Mistral-Nemo style configs
  ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_dim(), 128);
  EXPECT_EQ(c.num_kv_heads, 4);  // defaults to the head count
  j["head_dim"] = nullptr;
  EXPECT_EQ(parse_hf_config(j, "config.json").head_dim, 16);
}

TEST(HfConfig, LlamaDefaultsAndAttentionBias) {
  json j = tiny("llama");
  ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  j["attention_bias"] = true;
  EXPECT_TRUE(parse_hf_config(j, "config.json").attention_bias);
  j["mlp_bias"] = true;
  EXPECT_HAS(config_error(j), "mlp_bias is not supported");
}

TEST(HfConfig, LinearRopeScalingAndTypeAlias) {
  json j = tiny("llama");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 2.0);
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse_hf_config(j, "config.json").rope_scaling.type, RopeScaling::Type::None);
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(parse_hf_config(j, "config.json").rope_scaling.type, RopeScaling::Type::None);
}

TEST(HfConfig, RopeParametersOfNewerTransformers) {
  json j = tiny("llama");
  j["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 4.0}, {"rope_theta", 250000.0}};
  ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_DOUBLE_EQ(c.rope_theta, 250000.0);
}

TEST(HfConfig, Qwen2BiasesAndTiedEmbeddings) {
  ModelConfig c = parse_hf_config(qwen25(), "config.json");
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window false
  EXPECT_EQ(c.eos_token_id, 151643);

  json j = tiny("qwen2");
  j["vocab_size"] = 200000;
  ModelConfig d = parse_hf_config(j, "config.json");
  EXPECT_DOUBLE_EQ(d.rope_theta, 10000.0);  // Qwen2Config's default
  EXPECT_FALSE(d.tie_word_embeddings);
  EXPECT_EQ(d.max_position_embeddings, 32768);
  j["use_sliding_window"] = true;
  EXPECT_EQ(parse_hf_config(j, "config.json").sliding_window, 4096);
}

TEST(HfConfig, MistralSlidingWindow) {
  ModelConfig c = parse_hf_config(mistral(), "config.json");
  EXPECT_EQ(c.arch, "mistral");
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.head_dim, 128);
  json j = mistral();
  j["sliding_window"] = nullptr;
  EXPECT_EQ(parse_hf_config(j, "config.json").sliding_window, 0);
  j.erase("sliding_window");
  EXPECT_EQ(parse_hf_config(j, "config.json").sliding_window, 4096);
}

TEST(HfConfigErrors, HeadsNotDividingHidden) {
  json j = tiny("llama");
  j["num_attention_heads"] = 5;
  j["num_key_value_heads"] = 5;
  EXPECT_HAS(config_error(j), "num_attention_heads (5) does not divide hidden_size (64)");
  j["head_dim"] = 16;  // explicit head_dim makes it fine
  EXPECT_EQ(parse_hf_config(j, "c").q_dim(), 80);
}

TEST(HfConfigErrors, KvHeadsNotDividingHeads) {
  json j = tiny("llama");
  j["num_key_value_heads"] = 3;
  EXPECT_HAS(config_error(j), "num_key_value_heads (3) does not divide num_attention_heads (4)");
}

TEST(HfConfigErrors, UnsupportedRopeScaling) {
  for (const char* t : {"yarn", "dynamic", "longrope", "su"}) {
    json j = tiny("llama");
    j["rope_scaling"] = {{"rope_type", t}, {"factor", 4.0}};
    EXPECT_HAS(config_error(j), fmt::format("rope_scaling type '{}' is not supported", t));
  }
  json j = tiny("llama");
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  EXPECT_HAS(config_error(j), "rope_scaling of type llama3 needs low_freq_factor");
  j["rope_scaling"] = {{"factor", 8.0}};
  EXPECT_HAS(config_error(j), "rope_scaling has no rope_type");
}

TEST(HfConfigErrors, UnknownModelType) {
  std::string msg = config_error(tiny("gemma"));
  EXPECT_HAS(msg, "model_type 'gemma' is not supported");
  EXPECT_HAS(msg, "llama, qwen2, qwen3, mistral");
  json j = tiny("llama");
  j.erase("model_type");
  EXPECT_HAS(config_error(j), "no model_type");
}

TEST(HfConfigErrors, MissingOrMistypedFields) {
  json j = tiny("llama");
  j.erase("hidden_size");
  EXPECT_HAS(config_error(j), "missing hidden_size");
  j = tiny("llama");
  j["num_hidden_layers"] = "two";
  EXPECT_HAS(config_error(j), "num_hidden_layers must be an integer");
  j = tiny("llama");
  j["hidden_act"] = "gelu";
  EXPECT_HAS(config_error(j), "hidden_act \"gelu\" is not supported");
  j = tiny("llama");
  j["eos_token_id"] = 100;
  EXPECT_HAS(config_error(j), "outside the vocabulary");
  j = tiny("llama");
  j["tie_word_embeddings"] = 1;
  EXPECT_HAS(config_error(j), "tie_word_embeddings must be true or false");
}

TEST(HfConfig, LlamaWriterRoundTrips) {
  ModelConfig c = small_config();
  c.arch = "qwen2";
  c.attention_bias = true;
  c.tie_word_embeddings = true;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position = 64;
  json j = hf_llama_config_json(c, "bfloat16");
  EXPECT_EQ(j["architectures"], json({"LlamaForCausalLM"}));
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["head_dim"], 8);
  EXPECT_EQ(j["attention_bias"], true);
  EXPECT_EQ(j["hidden_act"], "silu");
  EXPECT_EQ(j["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(j["rope_scaling"]["original_max_position_embeddings"], 64);

  ModelConfig r = parse_hf_config(j, "written");
  EXPECT_EQ(r.arch, "llama");
  EXPECT_EQ(r.hidden_size, c.hidden_size);
  EXPECT_EQ(r.intermediate_size, c.intermediate_size);
  EXPECT_EQ(r.num_layers, c.num_layers);
  EXPECT_EQ(r.num_heads, c.num_heads);
  EXPECT_EQ(r.num_kv_heads, c.num_kv_heads);
  EXPECT_EQ(r.head_dim, c.head_dim);
  EXPECT_EQ(r.vocab_size, c.vocab_size);
  EXPECT_DOUBLE_EQ(r.rms_norm_eps, c.rms_norm_eps);
  EXPECT_DOUBLE_EQ(r.rope_theta, c.rope_theta);
  EXPECT_EQ(r.rope_scaling.type, c.rope_scaling.type);
  EXPECT_DOUBLE_EQ(r.rope_scaling.factor, 8.0);
  EXPECT_EQ(r.rope_scaling.original_max_position, 64);
  EXPECT_EQ(r.max_position_embeddings, c.max_position_embeddings);
  EXPECT_TRUE(r.tie_word_embeddings);
  EXPECT_TRUE(r.attention_bias);
  EXPECT_EQ(r.bos_token_id, c.bos_token_id);
  EXPECT_EQ(r.eos_token_id, c.eos_token_id);

  c.rope_scaling = RopeScaling{};
  EXPECT_TRUE(hf_llama_config_json(c)["rope_scaling"].is_null());
  EXPECT_EQ(hf_llama_config_json(c)["torch_dtype"], "float32");
}
