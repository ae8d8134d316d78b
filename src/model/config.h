// The declarative description of a model's architecture. Loaders fill it from a
// config.json, GGUF metadata or a llama2.c header; the runtime reads nothing else.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "model/mla.h"

namespace mlar {

// How RoPE pairs the coordinates of a head (MLA.md §1).
enum class RopeLayout {
  Half,         // pair (i, i + d/2): HF Llama, Qwen2, Qwen3, Mistral
  Interleaved,  // pair (2i, 2i+1): llama2.c, GGUF llama, DeepSeek rope_interleave
};
const char* rope_layout_name(RopeLayout l);

struct RopeScaling {
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;     // llama3
  double high_freq_factor = 4.0;    // llama3
  int64_t original_max_position = 8192;  // llama3
};
const char* rope_scaling_name(RopeScaling::Type t);

struct ModelConfig {
  std::string arch = "llama";  // source family: llama | qwen2 | qwen3 | mistral
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // D
  int64_t intermediate_size = 0;  // F (SwiGLU)
  int64_t num_layers = 0;
  int64_t num_heads = 0;     // n_h
  int64_t num_kv_heads = 0;  // n_kv
  int64_t head_dim = 0;      // d
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  RopeLayout rope_layout = RopeLayout::Half;
  int64_t max_position_embeddings = 2048;
  int64_t sliding_window = 0;  // Mistral: 0 = none (recorded; runtime attends fully)
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // Qwen2: biases on q, k, v
  // Qwen3: an RMSNorm (weight [d], eps rms_norm_eps) on every head of q and of k after
  // the projection and before RoPE (q_norm, k_norm).
  bool qk_norm = false;
  int32_t bos_token_id = 1;
  int32_t eos_token_id = 2;

  // Set when the attention is MLA (a converted model); the GQA fields above still
  // describe the source shapes (n_h, d) the conversion started from.
  std::optional<MlaConfig> mla;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  int64_t group_size() const { return num_heads / num_kv_heads; }

  // Throws mlar::Error "<source>: <what is inconsistent>" on impossible shapes.
  void validate(const std::string& source) const;

  // Values cached per token of `layer` (GQA: 2 * n_kv * d; MLA: r + n_r * d_r).
  int64_t kv_values_per_token_layer(int64_t layer = 0) const {
    return mla ? mla->cache_values(layer) : 2 * num_kv_heads * head_dim;
  }
};

nlohmann::json config_to_json(const ModelConfig& c);  // for inspect --json and reports

}  // namespace mlar
