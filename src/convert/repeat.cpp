#include "convert/repeat.h"

#include <cmath>
#include <utility>

#include "util/error.h"

namespace mlar {
namespace {

// [n_h, n_kv * d, d]: W_uk[h]^T, the identity in rows j(h)*d .. j(h)*d + d - 1.
Tensor rope_query_selection(const ModelConfig& c) {
  const int64_t H = c.num_heads, d = c.head_dim, R = c.kv_dim(), g = c.group_size();
  Tensor t({H, R, d});
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < d; ++i) t.data[static_cast<size_t>((h * R + (h / g) * d + i) * d + i)] = 1.0f;
  return t;
}

// [n_h * d, n_kv * d]: W_uv[h] (rows h*d ..), the identity in columns j(h)*d .. .
Tensor value_selection(const ModelConfig& c) {
  const int64_t H = c.num_heads, d = c.head_dim, R = c.kv_dim(), g = c.group_size();
  Tensor t({H * d, R});
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < d; ++i) t.data[static_cast<size_t>((h * d + i) * R + (h / g) * d + i)] = 1.0f;
  return t;
}

}  // namespace

MlaConfig repeat_mla_config(const ModelConfig& c) {
  MlaConfig m;
  m.rope_mode = RopeMode::Repeat;
  m.kv_lora_rank = c.kv_dim();  // r = n_kv * d
  m.qk_nope_head_dim = 0;       // d_n
  m.qk_rope_head_dim = c.head_dim;
  m.num_rope_heads = c.num_kv_heads;
  m.v_head_dim = c.head_dim;
  m.q_lora_rank = 0;
  m.q_rope_in_dim = c.head_dim;
  m.latent_norm = false;
  m.absorbed = false;
  m.qk_norm = c.qk_norm;  // the key norm is per kv head: it stays on each rope key
  m.softmax_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  return m;
}

void check_repeat_latent_layout(const ModelConfig& c, int64_t n, int64_t dh) {
  const int64_t n0 = c.num_kv_heads, d0 = c.head_dim;
  if (n == 0 && dh == 0) return;
  if (n < 0 || dh < 0) fail("--num-kv-heads {} --head-dim {}: both must be positive", n, dh);
  if (n == 0) n = n0;
  if (dh == 0) dh = d0;
  if (n == n0 && dh == d0) return;
  const std::string asked = fmt::format("--num-kv-heads {} --head-dim {}", n, dh);
  if (n * dh != n0 * d0)
    fail("{}: a latent of {} x {} = {} values cannot hold the source's {} x {} = {} key/value values exactly ({}); "
         "the repeat retrofit is exact only with the source layout {} x {}",
         asked, n, dh, n * dh, n0, d0, n0 * d0, n * dh < n0 * d0 ? "it would truncate them" : "it would pad them",
         n0, d0);
  fail("{}: rope heads of {} would rotate with frequencies theta^(-2i/{}) instead of the source's theta^(-2i/{}); "
       "only {} x {} keeps the model exact",
       asked, dh, dh, d0, n0, d0);
}

Model convert_repeat(const Model& gqa, const RepeatOptions& opts) {
  if (gqa.config.mla)  // checked before copying the weights
    fail("{}: model is already MLA (rope mode {}); convert starts from a GQA model", gqa.source,
         rope_mode_name(gqa.config.mla->rope_mode));
  return convert_repeat(Model(gqa), opts);
}

Model convert_repeat(Model&& gqa, const RepeatOptions& opts) {
  Model m = std::move(gqa);
  ModelConfig& c = m.config;
  if (c.mla)
    fail("{}: model is already MLA (rope mode {}); convert starts from a GQA model", m.source,
         rope_mode_name(c.mla->rope_mode));
  c.validate(m.source);
  check_weight_shapes(c, m.weights, m.source);
  check_repeat_latent_layout(c, opts.num_kv_heads, opts.head_dim);

  // The selections are the same in every layer: one copy, shared by all of them.
  const TypedTensor wqr = TypedTensor::shared(rope_query_selection(c));  // [n_h, n_kv * d, d]
  const TypedTensor w_uv = TypedTensor::shared(value_selection(c));      // [n_h * d, n_kv * d]
  const int64_t n_layers = static_cast<int64_t>(m.weights.layers.size());
  for (int64_t l = 0; l < n_layers; ++l) {
    LayerWeights& L = m.weights.layers[static_cast<size_t>(l)];
    MlaLayerWeights& a = L.mla;
    a = MlaLayerWeights{};
    a.wq = std::move(L.wq);  // [n_h * d, D]: per head the rope input (d_n = 0)
    a.bq = std::move(L.bq);
    a.wqr = wqr;
    a.q_norm = std::move(L.q_norm);  // Qwen3: [d] on each head's rope input (the source q head)
    a.k_norm = std::move(L.k_norm);  // [d] on each rope head (the source k head)
    a.w_dkv = std::move(L.wv);  // [n_kv * d, D]: c = W_v x
    a.b_dkv = std::move(L.bv);
    a.w_kr = std::move(L.wk);  // [n_kv * d, D]: k_pe = W_k x
    a.b_kr = std::move(L.bk);
    a.w_uv = w_uv;
    a.wo = std::move(L.wo);  // [D, n_h * d]
    L.wq = L.wk = L.wv = L.wo = L.bq = L.bk = L.bv = L.q_norm = L.k_norm = TypedTensor{};
    if (opts.progress) opts.progress(l + 1, n_layers);
  }
  c.mla = repeat_mla_config(c);
  m.format = "mla";
  check_weight_shapes(c, m.weights, m.source);
  return m;
}

}  // namespace mlar
