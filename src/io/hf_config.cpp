// config.json <-> ModelConfig for the Llama, Qwen2, Qwen3 and Mistral families.
// Defaults follow transformers' LlamaConfig, Qwen2Config, Qwen3Config and MistralConfig.
#include <cmath>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "io/hf_model.h"
#include "util/error.h"
#include "util/json_depth.h"

namespace mlar {
namespace {

using json = nlohmann::json;

struct FamilyDefaults {
  int64_t vocab_size;
  int64_t max_position_embeddings;
  double rms_norm_eps;
  double rope_theta;
  int32_t bos, eos;
};

// transformers' defaults. Qwen2Config and Qwen3Config have no bos/eos defaults
// (None); their checkpoints carry them, and 151643 (<|endoftext|>) is what they use.
FamilyDefaults defaults_for(const std::string& family) {
  if (family == "qwen2" || family == "qwen3") return {151936, 32768, 1e-6, 10000.0, 151643, 151643};
  if (family == "mistral") return {32000, 4096 * 32, 1e-6, 10000.0, 1, 2};
  return {32000, 2048, 1e-6, 10000.0, 1, 2};  // llama
}

bool present(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && !it->is_null();
}

int64_t as_int(const json& v, const std::string& key, const std::string& src) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  fail("{}: {} must be an integer, got {}", src, key, v.dump());
}

int64_t get_int(const json& j, const char* key, const std::string& src) {
  if (!present(j, key)) fail("{}: missing {}", src, key);
  return as_int(j.at(key), key, src);
}

int64_t get_int(const json& j, const char* key, int64_t def, const std::string& src) {
  return present(j, key) ? as_int(j.at(key), key, src) : def;
}

double as_double(const json& v, const std::string& key, const std::string& src) {
  if (!v.is_number()) fail("{}: {} must be a number, got {}", src, key, v.dump());
  return v.get<double>();
}

double get_double(const json& j, const char* key, double def, const std::string& src) {
  return present(j, key) ? as_double(j.at(key), key, src) : def;
}

bool get_bool(const json& j, const char* key, bool def, const std::string& src) {
  if (!present(j, key)) return def;
  if (!j.at(key).is_boolean()) fail("{}: {} must be true or false, got {}", src, key, j.at(key).dump());
  return j.at(key).get<bool>();
}

// bos/eos: an integer, or a list whose first entry is taken; null or [] keeps `def`.
int32_t get_token_id(const json& j, const char* key, int32_t def, const std::string& src) {
  if (!present(j, key)) return def;
  const json* v = &j.at(key);
  if (v->is_array()) {
    if (v->empty()) return def;
    v = &v->at(0);
  }
  int64_t id = as_int(*v, key, src);
  if (id < 0 || id > INT32_MAX) fail("{}: {} {} is out of range", src, key, id);
  return static_cast<int32_t>(id);
}

// rope_scaling (or the rope_parameters of newer transformers): null, default,
// linear or llama3. Anything else changes the attention math in ways not supported.
RopeScaling parse_rope_scaling(const json& r, const std::string& src) {
  RopeScaling s;
  if (r.is_null()) return s;
  if (!r.is_object()) fail("{}: rope_scaling must be an object or null, got {}", src, r.dump());
  std::string type;
  for (const char* k : {"rope_type", "type"})
    if (present(r, k)) {
      if (!r.at(k).is_string()) fail("{}: rope_scaling.{} must be a string", src, k);
      type = r.at(k).get<std::string>();
      break;
    }
  if (type.empty()) fail("{}: rope_scaling has no rope_type (or type)", src);
  auto need = [&](const char* k) {
    if (!present(r, k)) fail("{}: rope_scaling of type {} needs {}", src, type, k);
    return as_double(r.at(k), std::string("rope_scaling.") + k, src);
  };
  if (type == "default") return s;
  if (type == "linear") {
    s.type = RopeScaling::Type::Linear;
    s.factor = need("factor");
  } else if (type == "llama3") {
    s.type = RopeScaling::Type::Llama3;
    s.factor = need("factor");
    s.low_freq_factor = need("low_freq_factor");
    s.high_freq_factor = need("high_freq_factor");
    if (!present(r, "original_max_position_embeddings"))
      fail("{}: rope_scaling of type llama3 needs original_max_position_embeddings", src);
    s.original_max_position =
        as_int(r.at("original_max_position_embeddings"), "rope_scaling.original_max_position_embeddings", src);
    if (!(s.high_freq_factor > s.low_freq_factor))
      fail("{}: rope_scaling high_freq_factor ({}) must exceed low_freq_factor ({})", src, s.high_freq_factor,
           s.low_freq_factor);
    if (s.original_max_position <= 0) fail("{}: rope_scaling.original_max_position_embeddings must be positive", src);
  } else {
    fail("{}: rope_scaling type '{}' is not supported (supported: default, linear, llama3)", src, type);
  }
  if (!(s.factor > 0)) fail("{}: rope_scaling.factor must be positive", src);
  return s;
}

}  // namespace

ModelConfig parse_hf_config(const json& j, const std::string& src) {
  if (!j.is_object()) fail("{}: config is not a JSON object", src);
  if (!j.contains("model_type") || !j.at("model_type").is_string())
    fail("{}: no model_type (supported: llama, qwen2, qwen3, mistral)", src);
  const std::string family = j.at("model_type").get<std::string>();
  if (family != "llama" && family != "qwen2" && family != "qwen3" && family != "mistral")
    fail("{}: model_type '{}' is not supported (supported: llama, qwen2, qwen3, mistral)", src, family);
  const FamilyDefaults d = defaults_for(family);

  ModelConfig c;
  c.arch = family;
  c.rope_layout = RopeLayout::Half;
  c.vocab_size = get_int(j, "vocab_size", d.vocab_size, src);
  c.hidden_size = get_int(j, "hidden_size", src);
  c.intermediate_size = get_int(j, "intermediate_size", src);
  c.num_layers = get_int(j, "num_hidden_layers", src);
  c.num_heads = get_int(j, "num_attention_heads", src);
  c.num_kv_heads = get_int(j, "num_key_value_heads", c.num_heads, src);
  if (c.num_heads <= 0) fail("{}: num_attention_heads must be positive, got {}", src, c.num_heads);
  if (present(j, "head_dim")) {
    c.head_dim = get_int(j, "head_dim", src);
  } else if (family == "qwen3") {
    c.head_dim = 128;  // Qwen3Config's default, not hidden_size / num_attention_heads
  } else {
    if (c.hidden_size % c.num_heads != 0)
      fail("{}: num_attention_heads ({}) does not divide hidden_size ({}) and no head_dim is given", src,
           c.num_heads, c.hidden_size);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  c.rms_norm_eps = get_double(j, "rms_norm_eps", d.rms_norm_eps, src);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", d.max_position_embeddings, src);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", false, src);
  c.bos_token_id = get_token_id(j, "bos_token_id", d.bos, src);
  c.eos_token_id = get_token_id(j, "eos_token_id", d.eos, src);

  if (present(j, "hidden_act") && j.at("hidden_act") != "silu")
    fail("{}: hidden_act {} is not supported (SwiGLU with silu only)", src, j.at("hidden_act").dump());

  // RoPE: rope_theta + rope_scaling, or (transformers >= 4.56 / 5) rope_parameters.
  c.rope_theta = get_double(j, "rope_theta", d.rope_theta, src);
  if (present(j, "rope_scaling")) {
    c.rope_scaling = parse_rope_scaling(j.at("rope_scaling"), src);
  } else if (present(j, "rope_parameters")) {
    const json& rp = j.at("rope_parameters");
    c.rope_scaling = parse_rope_scaling(rp, src);
    if (rp.is_object() && !present(j, "rope_theta")) c.rope_theta = get_double(rp, "rope_theta", d.rope_theta, src);
  }

  if (family == "llama") {
    c.attention_bias = get_bool(j, "attention_bias", false, src);
    if (get_bool(j, "mlp_bias", false, src)) fail("{}: mlp_bias is not supported", src);
  } else if (family == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases
    if (get_bool(j, "use_sliding_window", false, src)) c.sliding_window = get_int(j, "sliding_window", 4096, src);
  } else if (family == "qwen3") {
    // Qwen3: q/k/v (and o) biases only with attention_bias, always q_norm / k_norm.
    c.attention_bias = get_bool(j, "attention_bias", false, src);
    c.qk_norm = true;
    if (get_bool(j, "use_sliding_window", false, src)) c.sliding_window = get_int(j, "sliding_window", 4096, src);
  } else {  // mistral
    auto sw = j.find("sliding_window");
    c.sliding_window = sw == j.end() ? 4096 : sw->is_null() ? 0 : as_int(*sw, "sliding_window", src);
    if (c.sliding_window < 0) fail("{}: sliding_window must not be negative", src);
  }
  // Bound every size before any product of two of them is formed (q_dim, tensor shapes).
  for (const auto& [v, key] :
       {std::pair{c.vocab_size, "vocab_size"}, std::pair{c.hidden_size, "hidden_size"},
        std::pair{c.intermediate_size, "intermediate_size"}, std::pair{c.num_layers, "num_hidden_layers"},
        std::pair{c.num_heads, "num_attention_heads"}, std::pair{c.num_kv_heads, "num_key_value_heads"},
        std::pair{c.head_dim, "head_dim"}})
    if (v > (int64_t{1} << 30)) fail("{}: {} = {} is out of range", src, key, v);
  c.validate(src);
  return c;
}

ModelConfig read_hf_config(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open", path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  check_json_depth(text, path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: malformed JSON: {}", path, e.what());
  }
  return parse_hf_config(j, path);
}

json hf_llama_config_json(const ModelConfig& c, const std::string& torch_dtype) {
  json rope = nullptr;
  if (c.rope_scaling.type == RopeScaling::Type::Linear) {
    rope = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
  } else if (c.rope_scaling.type == RopeScaling::Type::Llama3) {
    rope = {{"rope_type", "llama3"},
            {"factor", c.rope_scaling.factor},
            {"low_freq_factor", c.rope_scaling.low_freq_factor},
            {"high_freq_factor", c.rope_scaling.high_freq_factor},
            {"original_max_position_embeddings", c.rope_scaling.original_max_position}};
  }
  return {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"attention_bias", c.attention_bias},
      {"attention_dropout", 0.0},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_id},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", c.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"mlp_bias", false},
      {"num_attention_heads", c.num_heads},
      {"num_hidden_layers", c.num_layers},
      {"num_key_value_heads", c.num_kv_heads},
      {"pretraining_tp", 1},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_scaling", rope},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", torch_dtype},
      {"use_cache", true},
      {"vocab_size", c.vocab_size},
  };
}

json hf_config_json(const ModelConfig& c, const std::string& torch_dtype) {
  if (c.qk_norm != (c.arch == "qwen3"))
    fail("cannot write an HF config for architecture '{}' {} per-head q/k norms (only qwen3 has them)", c.arch,
         c.qk_norm ? "with" : "without");
  json j = hf_llama_config_json(c, torch_dtype);
  if (c.arch == "llama") return j;
  // Qwen2, Qwen3 and Mistral take the Llama fields they know; drop the Llama-only ones.
  for (const char* k : {"attention_bias", "mlp_bias", "pretraining_tp", "head_dim"}) j.erase(k);
  if (c.arch == "qwen3") {
    j["architectures"] = {"Qwen3ForCausalLM"};
    j["model_type"] = "qwen3";
    j["attention_bias"] = c.attention_bias;
    j["head_dim"] = c.head_dim;  // always: Qwen3Config's default is 128, not hidden / heads
    j["use_sliding_window"] = c.sliding_window > 0;
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
    j["max_window_layers"] = c.num_layers;
  } else if (c.arch == "qwen2") {
    j["architectures"] = {"Qwen2ForCausalLM"};
    j["model_type"] = "qwen2";
    j["use_sliding_window"] = c.sliding_window > 0;
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
    j["max_window_layers"] = c.num_layers;
    // Qwen2Config has no head_dim field: transformers derives hidden_size / heads
    // (newer versions honour a head_dim in the file, as parse_hf_config does). Keep
    // one that differs, or the config reads back with another head size.
    if (c.hidden_size != c.num_heads * c.head_dim) j["head_dim"] = c.head_dim;
  } else if (c.arch == "mistral") {
    j["architectures"] = {"MistralForCausalLM"};
    j["model_type"] = "mistral";
    j["head_dim"] = c.head_dim;
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
  } else {
    fail("cannot write an HF config for architecture '{}'", c.arch);
  }
  return j;
}

}  // namespace mlar
