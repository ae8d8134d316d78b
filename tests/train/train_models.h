// Small random models for the training tests: GQA and MLA (DeepSeek-like, repeat-
// like, stored-absorbed, per-layer ranks), both RoPE layouts.
#pragma once
#include <cmath>
#include <string>

#include "model/model.h"
#include "runtime/random_mla_model.h"
#include "runtime/random_model.h"

namespace mlar::test {

struct TrainVariant {
  std::string name;
  enum Kind { Gqa, DeepSeek, Repeat } kind = Gqa;
  bool bias = false;
  bool tied = false;
  bool absorbed = false;
  bool per_layer = false;
  RopeLayout layout = RopeLayout::Half;
  bool qk_norm = false;  // Qwen3: per-head q/k RMSNorms (GQA only)
};

// D 48, F 80, 2 layers, 6 query heads (2 kv heads of 8), vocab 97.
inline ModelConfig train_config(const TrainVariant& v) {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rope_layout = v.layout;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = v.tied;
  c.attention_bias = v.bias;
  c.qk_norm = v.qk_norm;
  if (v.kind == TrainVariant::Gqa) return c;
  MlaConfig m;
  if (v.kind == TrainVariant::Repeat) {  // n_r = n_kv rope heads of d, d_n = 0, W_qr
    m.rope_mode = RopeMode::Repeat;
    m.kv_lora_rank = c.kv_dim();
    m.qk_nope_head_dim = 0;
    m.qk_rope_head_dim = c.head_dim;
    m.num_rope_heads = c.num_kv_heads;
    m.v_head_dim = c.head_dim;
    m.q_rope_in_dim = c.head_dim;
    m.softmax_scale = 1.0 / std::sqrt(double(c.head_dim));
  } else {  // DeepSeek-like: one shared rope key, NoPE part, latent norm, q_lora
    m.rope_mode = RopeMode::Extend;
    m.kv_lora_rank = 20;
    m.qk_nope_head_dim = 6;
    m.qk_rope_head_dim = 4;
    m.num_rope_heads = 1;
    m.v_head_dim = 10;
    m.q_lora_rank = v.absorbed ? 0 : 16;
    m.latent_norm = true;
    m.softmax_scale = 1.0 / std::sqrt(double(6 + 4));
  }
  m.absorbed = v.absorbed;
  if (v.per_layer) m.layer_kv_lora_rank = {m.kv_lora_rank, m.kv_lora_rank - 6};
  c.mla = m;
  return c;
}

inline Model train_model(const TrainVariant& v, uint64_t seed) {
  const ModelConfig c = train_config(v);
  return c.mla ? random_mla_model(c, seed) : random_model(c, seed);
}

}  // namespace mlar::test
