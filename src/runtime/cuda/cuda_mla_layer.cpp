#include "runtime/cuda/cuda_mla_layer.h"

#include "ops/cuda/attention.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/head_ops.h"
#include "ops/cuda/linear.h"
#include "runtime/mla_attention.h"
#include "util/error.h"

namespace mlar {
namespace {

using cuda::linear;

// Workspace slots (shared by the MLA layers, which run one at a time).
enum Slot : size_t { kQ = 16, kQa, kRows, kQt, kO, kAtt };

cuda::DeviceTensor f32(const TypedTensor& t) { return cuda::to_device(t, DType::F32); }

}  // namespace

CudaMlaLayer::CudaMlaLayer(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w)
    : MlaLayerDims(c, layer, w, "CudaMlaLayer") {
  if (qs_dim_ > 0)
    fail("CudaMlaLayer: layer {}: per-head score scales (the Qwen3 'cached' key-norm form) run on the CPU only "
         "(use --device cpu, or convert with --qk-norm calibrated)",
         layer);
  nope_ = MlaAttention(c, layer, w).nope_scores();
  wq_ = cuda::to_device(w.wq);
  bq_ = f32(w.bq);
  wq_a_ = cuda::to_device(w.wq_a);
  q_a_norm_ = f32(w.q_a_norm);
  wq_b_ = cuda::to_device(w.wq_b);
  q_norm_ = f32(w.q_norm);
  k_norm_ = f32(w.k_norm);
  w_dkv_ = cuda::to_device(w.w_dkv);
  b_dkv_ = f32(w.b_dkv);
  kv_norm_ = f32(w.kv_norm);
  w_kr_ = cuda::to_device(w.w_kr);
  b_kr_ = f32(w.b_kr);
  wo_ = cuda::to_device(w.wo);
  wqr_ = f32(w.wqr);
  wuk_ = f32(w.w_uk);
  wuv_ = f32(w.w_uv);
  d_inv_freq_ = f32(TypedTensor(Tensor({static_cast<int64_t>(inv_freq_.size())}, inv_freq_)));
}

size_t CudaMlaLayer::weight_bytes() const {
  size_t b = 0;
  for (const cuda::DeviceTensor* t : {&wq_, &bq_, &wq_a_, &q_a_norm_, &wq_b_, &q_norm_, &k_norm_, &w_dkv_, &b_dkv_,
                                      &kv_norm_, &w_kr_, &b_kr_, &wo_, &wqr_, &wuk_, &wuv_})
    b += t->buf.bytes();
  return b;
}

void CudaMlaLayer::rope_queries(const float* q, int64_t n, const int64_t* dpos, float* dst, int64_t dst_stride,
                                int64_t dst_head) const {
  const float* q_in = q + qn_;  // rope input of head 0; head h at + h * qw
  if (has_qr_) {
    cuda::matmul_heads(q_in, wqr_.f32(), dst, qr_dims(n, dst_stride, dst_head));  // q_pe_h = W_qr[h] q_rope_in_h
  } else {
    cuda::copy_heads(q_in, H_ * qw_, qw_, dst, dst_stride, dst_head, n, H_, R_);
  }
  for (int64_t k = 0; k < nr_; ++k)  // rope head k of every query head
    cuda::rope(dst + k * dr_, n, H_, dr_, dst_head, dst_stride, dpos, d_inv_freq_.f32(), pairs_);
}

void CudaMlaLayer::forward(const float* x, int64_t n, int64_t pos0, const int64_t* dpos, void* cache, DType dtype,
                           DeviceWorkspace& ws, float* out) const {
  const int64_t cs = r_ + R_;
  float* q = ws.get(kQ, n * H_ * qw_);  // [n, H * qw]: per head [q_nope | q_rope_in]
  if (q_lora_ > 0) {
    float* qa = ws.get(kQa, n * q_lora_);  // [n, q_lora]
    linear(x, D_, wq_a_, {}, qa, q_lora_, n);
    cuda::rmsnorm(qa, q_lora_, q_a_norm_.f32(), qa, q_lora_, n, q_lora_, eps_);
    linear(qa, q_lora_, wq_b_, bq_, q, H_ * qw_, n);
  } else {
    linear(x, D_, wq_, bq_, q, H_ * qw_, n);
  }
  if (qk_norm_) cuda::rmsnorm(q + qn_, qw_, q_norm_.f32(), q + qn_, qw_, n * H_, qin_, eps_);

  // New cache rows [n, r + R] = [norm?(W_dkv x + b_dkv) | RoPE(knorm?(W_kr x + b_kr))], rounded into the cache.
  float* rows = ws.get(kRows, n * cs);
  linear(x, D_, w_dkv_, b_dkv_, rows, cs, n);
  if (latent_norm_) cuda::rmsnorm(rows, cs, kv_norm_.f32(), rows, cs, n, r_, eps_);
  linear(x, D_, w_kr_, b_kr_, rows + r_, cs, n);
  if (qk_norm_)
    for (int64_t k = 0; k < nr_; ++k)
      cuda::rmsnorm(rows + r_ + k * dr_, cs, k_norm_.f32(), rows + r_ + k * dr_, cs, n, dr_, eps_);
  cuda::rope(rows + r_, n, nr_, dr_, dr_, cs, dpos, d_inv_freq_.f32(), pairs_);
  const size_t esize = dtype_size(dtype);
  cuda::round_rows(rows, cs, n, cs, {static_cast<char*>(cache) + static_cast<size_t>(pos0 * cs) * esize, dtype, cs});

  // Queries in latent space [n, H, dq]: [W_uk[h]^T q_nope_h | q_pe_h] (or [q_pe_h]).
  const int64_t dq = (nope_ ? r_ : 0) + R_;
  float* qt = ws.get(kQt, n * H_ * dq);
  if (nope_ && absorbed_) {
    cuda::copy_heads(q, H_ * qw_, qw_, qt, H_ * dq, dq, n, H_, r_);  // stored: already W_uk^T q_nope
  } else if (nope_) {
    cuda::matmul_heads(q, wuk_.f32(), qt, uk_absorb_dims(n, dq));  // qt_h = W_uk[h]^T q_nope_h
  }
  rope_queries(q, n, dpos, qt + (nope_ ? r_ : 0), H_ * dq, dq);

  // o_h = sum_t p_h(t) c_t over the cache rows: [n, H, r].
  float* o = ws.get(kO, n * H_ * r_);
  const ops::AttentionDims a = absorbed_attention_dims(n, pos0, dq);
  const ops::TypedRows all{cache, dtype, cs};
  cuda::attention(qt, nope_ ? all : ops::offset_cols(all, r_), all, o, a);

  if (absorbed_) {
    linear(o, H_ * r_, wo_, {}, out, D_, n);  // W_o' reads r values per head
    return;
  }
  float* att = ws.get(kAtt, n * H_ * dv_);  // [n, H * d_v]: v_h = W_uv[h] o_h
  cuda::matmul_heads(o, wuv_.f32(), att, uv_dims(n));
  linear(att, H_ * dv_, wo_, {}, out, D_, n);
}

}  // namespace mlar
