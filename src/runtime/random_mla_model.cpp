#include "runtime/random_mla_model.h"

#include <cmath>

#include "model/weights.h"
#include "runtime/random_fill.h"
#include "runtime/random_model.h"
#include "util/error.h"

namespace mlar {
namespace {

double inv_sqrt(int64_t n) { return 1.0 / std::sqrt(static_cast<double>(n)); }

}  // namespace

Model random_mla_model(const ModelConfig& config, uint64_t seed) {
  if (!config.mla) fail("random_mla_model: the config has no MLA section");
  ModelConfig gqa = config;
  gqa.mla.reset();
  Model m = random_model(gqa, seed);  // embedding, norms, MLP, head
  m.config = config;
  const ModelConfig& c = m.config;
  const MlaConfig& a = *c.mla;
  const int64_t D = c.hidden_size, H = c.num_heads, R = a.rope_values();
  RandomFiller f(seed * 0x9e3779b97f4a7c15ULL + 0x51);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = m.weights.layers[static_cast<size_t>(l)];
    L.wq = L.wk = L.wv = L.wo = L.bq = L.bk = L.bv = Tensor{};
    MlaLayerWeights& w = L.mla;
    const int64_t r = a.rank(l), q_rows = H * (a.q_nope_width(l) + a.q_rope_width());
    if (a.q_lora_rank > 0) {
      w.wq_a = f.normal({a.q_lora_rank, D}, 0.0, inv_sqrt(D));
      w.q_a_norm = f.normal({a.q_lora_rank}, 1.0, 0.1);
      w.wq_b = f.normal({q_rows, a.q_lora_rank}, 0.0, inv_sqrt(a.q_lora_rank));
    } else {
      w.wq = f.normal({q_rows, D}, 0.0, inv_sqrt(D));
    }
    if (a.q_rope_in_dim > 0 && !a.absorbed) w.wqr = f.normal({H, R, a.q_rope_in_dim}, 0.0, inv_sqrt(a.q_rope_in_dim));
    w.w_dkv = f.normal({r, D}, 0.0, inv_sqrt(D));
    if (a.latent_norm) w.kv_norm = f.normal({r}, 1.0, 0.1);
    w.w_kr = f.normal({R, D}, 0.0, inv_sqrt(D));
    if (c.attention_bias) {
      w.bq = f.normal({q_rows}, 0.0, 0.1);
      w.b_dkv = f.normal({r}, 0.0, 0.1);
      w.b_kr = f.normal({R}, 0.0, 0.1);
    }
    if (!a.absorbed) {
      if (a.qk_nope_head_dim > 0) w.w_uk = f.normal({H * a.qk_nope_head_dim, r}, 0.0, inv_sqrt(r));
      w.w_uv = f.normal({H * a.v_head_dim, r}, 0.0, inv_sqrt(r));
      w.wo = f.normal({D, H * a.v_head_dim}, 0.0, inv_sqrt(H * a.v_head_dim));
    } else {
      w.wo = f.normal({D, H * r}, 0.0, inv_sqrt(H * r));
    }
  }
  check_weight_shapes(c, m.weights, m.source);
  return m;
}

}  // namespace mlar
