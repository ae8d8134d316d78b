// Random MLA models in the general form (DeepSeek-like: NoPE part, q_lora, latent
// norm, one shared rope head, per-layer ranks; or the repeat form with free, dense
// up-projections as after fine-tuning), for absorb and format tests.
#pragma once
#include <cmath>
#include <random>

#include "convert/repeat.h"
#include "model/model.h"
#include "runtime/random_model.h"

namespace mlar::test {

inline Tensor random_tensor(const Shape& s, std::mt19937_64& rng, double sd, double mean = 0) {
  std::normal_distribution<float> dist{static_cast<float>(mean), static_cast<float>(sd)};
  Tensor t(s);
  for (float& x : t.data) x = dist(rng);
  return t;
}

// A DeepSeek-layout MLA model: D 48, 4 heads, d_n 8, d_r 8 (1 rope head), d_v 12,
// q_lora 24, latent norm, ranks 20 / 16 per layer, biases on q, latent, rope key.
inline Model random_deepseek_like_mla(uint64_t seed) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 64;
  c.hidden_size = 48;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 4;
  c.head_dim = 16;
  c.rope_theta = 10000;
  c.rope_layout = RopeLayout::Interleaved;
  c.max_position_embeddings = 128;
  Model m = random_model(c, seed);  // embedding, norms, MLP, head
  MlaConfig mc;
  mc.rope_mode = RopeMode::Extend;
  mc.layer_kv_lora_rank = {20, 16};
  mc.kv_lora_rank = 20;
  mc.qk_nope_head_dim = 8;
  mc.qk_rope_head_dim = 8;
  mc.num_rope_heads = 1;
  mc.v_head_dim = 12;
  mc.q_lora_rank = 24;
  mc.latent_norm = true;
  mc.softmax_scale = 1.0 / std::sqrt(16.0);
  m.config.mla = mc;
  std::mt19937_64 rng(seed * 7 + 1);
  const int64_t D = c.hidden_size, H = c.num_heads;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = m.weights.layers[size_t(l)];
    L.wq = L.wk = L.wv = L.wo = L.bq = L.bk = L.bv = Tensor{};
    MlaLayerWeights& w = L.mla;
    const int64_t r = mc.rank(l), q_rows = H * (mc.qk_nope_head_dim + mc.rope_values());
    w.wq_a = random_tensor({mc.q_lora_rank, D}, rng, 1 / std::sqrt(double(D)));
    w.q_a_norm = random_tensor({mc.q_lora_rank}, rng, 0.1, 1.0);
    w.wq_b = random_tensor({q_rows, mc.q_lora_rank}, rng, 1 / std::sqrt(double(mc.q_lora_rank)));
    w.bq = random_tensor({q_rows}, rng, 0.1);
    w.w_dkv = random_tensor({r, D}, rng, 1 / std::sqrt(double(D)));
    w.b_dkv = random_tensor({r}, rng, 0.1);
    w.kv_norm = random_tensor({r}, rng, 0.1, 1.0);
    w.w_kr = random_tensor({mc.rope_values(), D}, rng, 1 / std::sqrt(double(D)));
    w.b_kr = random_tensor({mc.rope_values()}, rng, 0.1);
    w.w_uk = random_tensor({H * mc.qk_nope_head_dim, r}, rng, 1 / std::sqrt(double(r)));
    w.w_uv = random_tensor({H * mc.v_head_dim, r}, rng, 1 / std::sqrt(double(r)));
    w.wo = random_tensor({D, H * mc.v_head_dim}, rng, 1 / std::sqrt(double(H * mc.v_head_dim)));
  }
  m.source = "random-deepseek-like";
  m.format = "random";
  check_weight_shapes(m.config, m.weights, m.source);
  return m;
}

// The repeat conversion of a random GQA model whose W_qr and W_uv are then replaced by
// dense random matrices (what fine-tuning makes of the selections).
inline Model random_finetuned_repeat(uint64_t seed) {
  ModelConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.attention_bias = true;
  c.max_position_embeddings = 128;
  Model m = convert_repeat(random_model(c, seed));
  std::mt19937_64 rng(seed * 11 + 3);
  for (auto& L : m.weights.layers) {
    L.mla.wqr = random_tensor(L.mla.wqr.shape, rng, 0.3);
    L.mla.w_uv = random_tensor(L.mla.w_uv.shape, rng, 0.3);
  }
  return m;
}

}  // namespace mlar::test
