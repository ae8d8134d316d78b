#include "model/config.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace mlar {

const char* rope_layout_name(RopeLayout l) { return l == RopeLayout::Half ? "half" : "interleaved"; }

const char* rope_scaling_name(RopeScaling::Type t) {
  switch (t) {
    case RopeScaling::Type::None: return "none";
    case RopeScaling::Type::Linear: return "linear";
    case RopeScaling::Type::Llama3: return "llama3";
  }
  return "?";
}

void ModelConfig::validate(const std::string& src) const {
  auto pos = [&](int64_t v, const char* name) {
    if (v <= 0) fail("{}: {} must be positive, got {}", src, name, v);
  };
  pos(vocab_size, "vocab_size");
  pos(hidden_size, "hidden_size");
  pos(intermediate_size, "intermediate_size");
  pos(num_layers, "num_hidden_layers");
  pos(num_heads, "num_attention_heads");
  pos(num_kv_heads, "num_key_value_heads");
  pos(head_dim, "head_dim");
  pos(max_position_embeddings, "max_position_embeddings");
  if (num_heads % num_kv_heads != 0)
    fail("{}: num_key_value_heads ({}) does not divide num_attention_heads ({})", src, num_kv_heads, num_heads);
  if (head_dim % 2 != 0) fail("{}: head_dim ({}) must be even for RoPE", src, head_dim);
  if (!(rms_norm_eps > 0)) fail("{}: rms_norm_eps must be positive", src);
  if (!(rope_theta > 0)) fail("{}: rope_theta must be positive", src);
  if (rope_scaling.type != RopeScaling::Type::None && !(rope_scaling.factor > 0))
    fail("{}: rope_scaling.factor must be positive", src);
  if (bos_token_id >= vocab_size || eos_token_id >= vocab_size)
    fail("{}: bos/eos token id outside the vocabulary of {}", src, vocab_size);
}

nlohmann::json config_to_json(const ModelConfig& c) {
  nlohmann::json j = {
      {"arch", c.arch},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"rope_layout", rope_layout_name(c.rope_layout)},
      {"max_position_embeddings", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_bias", c.attention_bias},
      {"qk_norm", c.qk_norm},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_id},
  };
  if (c.rope_scaling.type != RopeScaling::Type::None) {
    j["rope_scaling"] = {{"type", rope_scaling_name(c.rope_scaling.type)}, {"factor", c.rope_scaling.factor}};
    if (c.rope_scaling.type == RopeScaling::Type::Llama3) {
      j["rope_scaling"]["low_freq_factor"] = c.rope_scaling.low_freq_factor;
      j["rope_scaling"]["high_freq_factor"] = c.rope_scaling.high_freq_factor;
      j["rope_scaling"]["original_max_position_embeddings"] = c.rope_scaling.original_max_position;
    }
  }
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  if (c.mla) j["mla"] = mla_config_to_json(*c.mla);
  return j;
}

}  // namespace mlar
