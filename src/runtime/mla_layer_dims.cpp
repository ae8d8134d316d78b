#include "runtime/mla_layer_dims.h"

#include "model/mla.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {

MlaLayerDims::MlaLayerDims(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w, const char* who) {
  if (!c.mla) fail("{}: layer {} of a model without an MLA config", who, layer);
  const MlaConfig& m = *c.mla;
  check_mla_layer_shapes(c, layer, w, who);
  D_ = c.hidden_size;
  H_ = c.num_heads;
  r_ = m.rank(layer);
  dn_ = m.qk_nope_head_dim;
  dr_ = m.qk_rope_head_dim;
  nr_ = m.num_rope_heads;
  R_ = m.rope_values();
  dv_ = m.v_head_dim;
  qn_ = m.q_nope_width(layer);
  qin_ = m.q_rope_width();
  qw_ = qn_ + qin_;
  q_lora_ = m.q_lora_rank;
  absorbed_ = m.absorbed;
  has_qr_ = !w.wqr.empty();
  latent_norm_ = m.latent_norm;
  qk_norm_ = m.qk_norm;
  if (qk_norm_ && !has_qr_)
    fail("{}: layer {}: q/k norms need the rope-query up-projection (the query norm acts on its input)", who, layer);
  qs_dim_ = m.qk_scale_dim;
  n_ks_ = m.key_scales();
  if (qs_dim_ > 0 && (absorbed_ || qk_norm_))
    fail("{}: layer {}: score scales (qk_scale_dim) with stored absorption or qk_norm", who, layer);
  scale_ = static_cast<float>(m.softmax_scale);
  eps_ = static_cast<float>(c.rms_norm_eps);
  pairs_ = rope_pairs(c.rope_layout);
  if (r_ <= 0 || dr_ <= 0 || dr_ % 2 != 0 || nr_ <= 0 || !(m.softmax_scale > 0) || (!absorbed_ && dv_ <= 0))
    fail("{}: layer {} is not a valid MLA layer (rank {}, rope {} x {}, d_v {}, scale {})", who, layer, r_, nr_, dr_,
         dv_, m.softmax_scale);
  if (m.rope_inv_freq.empty()) {
    inv_freq_ = rope_inv_freq(c.rope_theta, dr_, c.rope_scaling);
  } else {  // explicit frequencies (partial-RoPE retrofits keep a subset of the source's)
    if (static_cast<int64_t>(m.rope_inv_freq.size()) * 2 != dr_)
      fail("{}: layer {}: {} rope_inv_freq values for a rope head of {} (needs {})", who, layer,
           m.rope_inv_freq.size(), dr_, dr_ / 2);
    inv_freq_.assign(m.rope_inv_freq.begin(), m.rope_inv_freq.end());
  }
}

ops::HeadMatmulDims MlaLayerDims::qr_dims(int64_t n, int64_t dst_stride, int64_t dst_head) const {
  ops::HeadMatmulDims d;  // W_qr[h]: [R, qin]
  d.n = n;
  d.heads = H_;
  d.in = qin_;
  d.out = R_;
  d.x_stride = H_ * qw_;
  d.x_head_stride = qw_;
  d.y_stride = dst_stride;
  d.y_head_stride = dst_head;
  d.w_head_stride = R_ * qin_;
  return d;
}

ops::HeadMatmulDims MlaLayerDims::uk_absorb_dims(int64_t n, int64_t dq) const {
  ops::HeadMatmulDims d;  // W_uk[h]: [d_n, r], applied transposed
  d.n = n;
  d.heads = H_;
  d.in = dn_;
  d.out = r_;
  d.x_stride = H_ * qw_;
  d.x_head_stride = qw_;
  d.y_stride = H_ * dq;
  d.y_head_stride = dq;
  d.w_head_stride = dn_ * r_;
  d.w_in_out = true;
  return d;
}

ops::HeadMatmulDims MlaLayerDims::uv_dims(int64_t n) const {
  ops::HeadMatmulDims d;  // W_uv[h]: [d_v, r]
  d.n = n;
  d.heads = H_;
  d.in = r_;
  d.out = dv_;
  d.x_stride = H_ * r_;
  d.x_head_stride = r_;
  d.y_stride = H_ * dv_;
  d.y_head_stride = dv_;
  d.w_head_stride = dv_ * r_;
  return d;
}

ops::AttentionDims MlaLayerDims::absorbed_attention_dims(int64_t n, int64_t pos0, int64_t dq) const {
  ops::AttentionDims a;
  a.n_q = n;
  a.n_heads = H_;
  a.n_kv_heads = 1;
  a.dk = dq;
  a.dv = r_;
  a.q_start = pos0;
  a.scale = scale_;
  return a;
}

}  // namespace mlar
