#include "runtime/mla_attention.h"

#include <cmath>

#include "model/weights.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/head_matmul.h"
#include "ops/kv_attention.h"
#include "ops/linear.h"
#include "ops/matmul.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/shared_kv_attention.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {
namespace {

// Workspace slots of this layer type (shared by all MLA layers of a decoder).
enum Slot : size_t { kQ, kQa, kQh, kK, kV, kAtt, kQt, kO, kScores, kRows, kWide, kProbe };
constexpr size_t kPos = 0;  // integer slot

// True when rows [h * qw, h * qw + width) of the projection w (and bias b) are zero
// for every head h: that part of each head's query is identically zero.
bool head_rows_zero(const TypedTensor& typed_w, const TypedTensor& typed_b, int64_t heads, int64_t qw,
                    int64_t width) {
  Tensor w32, b32;
  const float* wp = f32_or_convert(typed_w, w32);
  const float* bp = typed_b.empty() ? nullptr : f32_or_convert(typed_b, b32);
  const int64_t cols = typed_w.dim(1);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = h * qw; i < h * qw + width; ++i) {
      if (bp && bp[i] != 0.0f) return false;
      const float* row = wp + i * cols;
      for (int64_t j = 0; j < cols; ++j)
        if (row[j] != 0.0f) return false;
    }
  return true;
}

// Cache rows [0, T) as f32 ([T, r + R]): the rows themselves for an F32 cache, else
// widened into a workspace slot.
const float* f32_rows(const MlaLayerCache& cache, int64_t T, Workspace& ws) {
  const CacheRows& rows = cache.rows();
  if (rows.dtype() == DType::F32) return static_cast<const float*>(rows.view().data);
  float* wide = ws.get(kWide, T * rows.cols());
  rows.read(0, T, wide, rows.cols());
  return wide;
}

// Per (token, head) of `heads` heads of `dim` values in rows of `stride`:
// out[t * out_stride + h] = 1 / sqrt(mean(x^2) + eps), the scale an RMSNorm applies.
void inverse_rms(const float* x, int64_t n, int64_t heads, int64_t dim, int64_t stride, float eps, float* out,
                 int64_t out_stride) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      const float* v = x + t * stride + h * dim;
      double ss = 0;
      for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(v[i]) * v[i];
      out[t * out_stride + h] = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    }
}

}  // namespace

const char* mla_eval_name(MlaEval e) {
  switch (e) {
    case MlaEval::Auto: return "auto";
    case MlaEval::Naive: return "naive";
    case MlaEval::Absorbed: return "absorbed";
  }
  return "?";
}

std::optional<MlaEval> mla_eval_from_name(const std::string& name) {
  for (MlaEval e : {MlaEval::Auto, MlaEval::Naive, MlaEval::Absorbed})
    if (name == mla_eval_name(e)) return e;
  return std::nullopt;
}

MlaAttention::MlaAttention(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w, MlaEval eval)
    : MlaLayerDims(c, layer, w, "MlaAttention"), w_(w), eval_(eval) {
  // The per-head up-projections run through f32 kernels (ops/head_matmul.h): small
  // tensors, widened once here when the file keeps them as BF16/F16.
  wqr_ = w.wqr.empty() ? nullptr : f32_or_convert(w.wqr, wqr32_);
  wuk_ = w.w_uk.empty() ? nullptr : f32_or_convert(w.w_uk, wuk32_);
  wuv_ = w.w_uv.empty() ? nullptr : f32_or_convert(w.w_uv, wuv32_);
  if (absorbed_) {
    nope_ = !head_rows_zero(q_lora_ > 0 ? w.wq_b : w.wq, w.bq, H_, qw_, qn_);
  } else {
    nope_ = dn_ > 0;
  }
}

std::string MlaAttention::kind() const {
  return absorbed_ ? "mla-stored-absorbed" : std::string("mla-") + mla_eval_name(eval_);
}

std::unique_ptr<LayerCache> MlaAttention::make_cache(DType dtype) const {
  return std::make_unique<MlaLayerCache>(r_, R_, dtype, n_ks_);
}

// The Auto rule, from bench_mla --sweep (time of one forward call of n tokens after
// `cached` ones, naive / absorbed; 16 threads, best of 3; > 1: absorbed is faster):
//
//   model (MLA layout)                       cached  n=1    4     16    64    256   1024
//   stories260K-sized repeat (D 64, 5 layers,    0   2.05  1.19  1.11  1.01  1.02  0.88
//     8 heads, r 32, n_r 4, d_r 8)             512   1.52  1.39  1.30  1.02  0.98  0.94
//                                             2048   3.47  2.96  1.48  1.12  1.00  1.05
//   1024-hidden repeat (8 layers, 16 heads,      0   1.03  1.00  0.99  0.94  0.95  0.96
//     r 256, n_r 4, d_r 64, d_v 64)            512   1.66  1.92  1.32  1.00  0.98  0.97
//                                             2048   3.83  3.66  1.70  1.21  1.01  0.91
//   1024-hidden DeepSeek-like (r 64, n_r 1,      0   1.07  1.01  0.99  0.92  1.01  1.00
//     d_r 32, d_n 32, d_v 64, latent norm)     512   1.52  1.52  1.38  1.07  1.01  1.00
//                                             2048   2.81  3.03  1.88  1.35  1.08  1.06
//
// Decode (n = 1) and short chunks after a cache: absorbed, by 1.3-3.8x, more the
// longer the cache (naive re-expands every cached token on every call). Prefill from
// an empty cache: within a few percent, naive ahead for long prompts. Chunks after a
// cache: naive only pays off once the chunk is about as long as the cache. Rule:
// Naive when n >= 64 and n >= cached, else Absorbed (worst pick in the table: 9% slower).
// Naive's scratch (T x n_h x (d_n + n_r d_r + d_v) floats) then stays within twice
// the call's own tokens.
constexpr int64_t kAutoNaiveMinTokens = 64;

MlaEval MlaAttention::evaluation(int64_t n, int64_t cached) const {
  if (absorbed_) return MlaEval::Absorbed;  // nothing to expand
  if (eval_ != MlaEval::Auto) return eval_;
  return n >= kAutoNaiveMinTokens && n >= cached ? MlaEval::Naive : MlaEval::Absorbed;
}

void MlaAttention::forward(const float* x, int64_t n, int64_t pos0, LayerCache& cache_base, Workspace& ws,
                           float* out) const {
  MlaLayerCache& cache = checked_cache(cache_base);
  const float* q = queries_and_rows(x, n, pos0, cache, ws);
  const int64_t* pos = ws.get_i64(kPos, n);
  if (evaluation(n, pos0) == MlaEval::Naive) {
    forward_naive(q, n, pos0, pos, cache, ws, out);
    return;
  }
  float* o = ws.get(kO, n * H_ * r_);  // [n, H, r]
  attend_absorbed(q, n, pos0, pos, cache, ws, o);
  if (absorbed_) {
    ops::linear(o, w_.wo, out, n);  // W_o' reads r values per head
    return;
  }
  float* att = ws.get(kAtt, n * H_ * dv_);  // [n, H * d_v]: v_h = W_uv[h] o_h
  ops::matmul_heads(o, wuv_, att, uv_dims(n));
  ops::linear(att, w_.wo, out, n);
}

void MlaAttention::attend_latents(const float* x, int64_t n, int64_t pos0, LayerCache& cache_base, Workspace& ws,
                                  float* o) const {
  MlaLayerCache& cache = checked_cache(cache_base);
  const float* q = queries_and_rows(x, n, pos0, cache, ws);
  attend_absorbed(q, n, pos0, ws.get_i64(kPos, n), cache, ws, o);
}

MlaLayerCache& MlaAttention::checked_cache(LayerCache& cache_base) const {
  auto* cache = dynamic_cast<MlaLayerCache*>(&cache_base);
  if (!cache) fail("MlaAttention: given a cache of another attention type");
  if (cache->rank() != r_ || cache->rope_values() != R_ || cache->key_scales() != n_ks_)
    fail("MlaAttention: cache rows of {} + {} + {} values, layer has rank {}, {} rope values and {} key scales",
         cache->rank(), cache->rope_values(), cache->key_scales(), r_, R_, n_ks_);
  return *cache;
}

const float* MlaAttention::queries_and_rows(const float* x, int64_t n, int64_t pos0, MlaLayerCache& cache,
                                            Workspace& ws) const {
  const int64_t cs = r_ + R_ + n_ks_;  // cache row stride
  int64_t* pos = ws.get_i64(kPos, n);  // [n] positions
  for (int64_t i = 0; i < n; ++i) pos[i] = pos0 + i;

  // Queries: [n, H * (qn + qin)], per head [q_nope | q_rope_in].
  float* q = ws.get(kQ, n * H_ * qw_);
  if (q_lora_ > 0) {
    float* qa = ws.get(kQa, n * q_lora_);  // [n, q_lora_rank]
    ops::linear(x, w_.wq_a, qa, n);
    ops::rmsnorm(qa, w_.q_a_norm.ptr(), qa, n, q_lora_, eps_);
    ops::linear(qa, w_.wq_b, w_.bq, q, n);
  } else {
    ops::linear(x, w_.wq, w_.bq, q, n);
  }
  // q_norm on every head's rope-query input: rows of qin values at stride qw over the
  // n * H (token, head) pairs.
  if (qk_norm_) ops::rmsnorm_strided(q + qn_, qw_, w_.q_norm.ptr(), q + qn_, qw_, n * H_, qin_, eps_);
  float* rows = ws.get(kRows, n * cs);
  if (qs_dim_ > 0) {
    // Score scales: each head's whole query times t_h = 1/rms(W_qs x)_h; the key
    // scales s_j = 1/rms(W_ks x)_j go into the new cache rows after [c | k_pe].
    float* probe = ws.get(kProbe, n * H_ * qs_dim_);  // [n, H * qs_dim] (then [n, n_ks * qs_dim])
    std::vector<float> t(static_cast<size_t>(n * H_));  // [n, H]
    ops::linear(x, w_.wq_scale, probe, n);
    inverse_rms(probe, n, H_, qs_dim_, H_ * qs_dim_, eps_, t.data(), H_);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H_; ++h) {
        float* qh = q + (i * H_ + h) * qw_;
        const float th = t[static_cast<size_t>(i * H_ + h)];
        for (int64_t k = 0; k < qw_; ++k) qh[k] *= th;
      }
    ops::linear(x, w_.wk_scale, probe, n);
    inverse_rms(probe, n, n_ks_, qs_dim_, n_ks_ * qs_dim_, eps_, rows + r_ + R_, cs);
  }

  // New cache rows in f32, [n, r + R] = [norm?(W_dkv x + b_dkv) | RoPE(knorm?(W_kr x + b_kr))]
  // (| key scales), then rounded into rows pos0 .. pos0+n-1 of the cache in its dtype.
  ops::linear(x, D_, w_.w_dkv, w_.b_dkv, rows, cs, n);
  if (latent_norm_) ops::rmsnorm_strided(rows, cs, w_.kv_norm.ptr(), rows, cs, n, r_, eps_);
  ops::linear(x, D_, w_.w_kr, w_.b_kr, rows + r_, cs, n);
  if (qk_norm_)  // k_norm on each rope head of the new rows, before RoPE
    for (int64_t k = 0; k < nr_; ++k)
      ops::rmsnorm_strided(rows + r_ + k * dr_, cs, w_.k_norm.ptr(), rows + r_ + k * dr_, cs, n, dr_, eps_);
  ops::rope(rows + r_, n, nr_, dr_, dr_, cs, pos, inv_freq_.data(), pairs_);
  cache.rows().write(pos0, rows, cs, n);
  return q;
}

void MlaAttention::rope_queries(const float* q, int64_t n, const int64_t* pos, float* dst, int64_t dst_stride,
                                int64_t dst_head) const {
  const float* q_in = q + qn_;  // rope input of head 0; head h at + h * qw
  if (has_qr_) {
    ops::matmul_heads(q_in, wqr_, dst, qr_dims(n, dst_stride, dst_head));  // q_pe_h = W_qr[h] q_rope_in_h
  } else {
    ops::copy_heads(q_in, H_ * qw_, qw_, dst, dst_stride, dst_head, n, H_, R_);
  }
  for (int64_t k = 0; k < nr_; ++k)  // rope head k of every query head
    ops::rope(dst + k * dr_, n, H_, dr_, dst_head, dst_stride, pos, inv_freq_.data(), pairs_);
}

void MlaAttention::forward_naive(const float* q, int64_t n, int64_t pos0, const int64_t* pos,
                                 const MlaLayerCache& cache, Workspace& ws, float* out) const {
  const int64_t T = pos0 + n, cs = r_ + R_ + n_ks_, dk = dn_ + R_;
  const float* c = f32_rows(cache, T, ws);  // [T, r + R (+ n_ks)]

  // Queries [n, H, d_n + R]: [q_nope_h | q_pe_h].
  float* qh = ws.get(kQh, n * H_ * dk);
  if (dn_ > 0) ops::copy_heads(q, H_ * qw_, qw_, qh, H_ * dk, dk, n, H_, dn_);
  rope_queries(q, n, pos, qh + dn_, H_ * dk, dk);

  // Keys [T, H, d_n + R]: [W_uk[h] c_t | k_pe_t] for every cached token.
  float* k = ws.get(kK, T * H_ * dk);
  if (dn_ > 0) {
    ops::HeadMatmulDims d;  // W_uk[h]: [d_n, r], one shared input row c_t
    d.n = T;
    d.heads = H_;
    d.in = r_;
    d.out = dn_;
    d.x_stride = cs;
    d.x_head_stride = 0;
    d.y_stride = H_ * dk;
    d.y_head_stride = dk;
    d.w_head_stride = dn_ * r_;
    ops::matmul_heads(c, wuk_, k, d);
  }
  ops::copy_heads(c + r_, cs, 0, k + dn_, H_ * dk, dk, T, H_, R_);
  if (n_ks_ > 0) {  // head h's key of token t times s_{j(h)}(t)
    const int64_t g = H_ / n_ks_;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H_; ++h) {
        const float st = c[t * cs + r_ + R_ + h / g];
        float* kh = k + (t * H_ + h) * dk;
        for (int64_t i = 0; i < dk; ++i) kh[i] *= st;
      }
  }

  // Values [T, H * d_v] = c W_uv^T.
  float* v = ws.get(kV, T * H_ * dv_);
  ops::matmul_strided(c, cs, wuv_, nullptr, v, H_ * dv_, T, r_, H_ * dv_);

  float* att = ws.get(kAtt, n * H_ * dv_);  // [n, H * d_v]
  ops::AttentionDims a;
  a.n_q = n;
  a.n_heads = H_;
  a.n_kv_heads = H_;
  a.dk = dk;
  a.dv = dv_;
  a.q_start = pos0;
  a.scale = scale_;
  ops::causal_attention(qh, k, v, att, a);
  ops::linear(att, w_.wo, out, n);
}

void MlaAttention::attend_absorbed(const float* q, int64_t n, int64_t pos0, const int64_t* pos,
                                   const MlaLayerCache& cache, Workspace& ws, float* o) const {
  const int64_t cs = r_ + R_ + n_ks_;
  const int64_t dq = (nope_ ? r_ : 0) + R_;  // per-head query (and key) width

  // Queries in latent space [n, H, dq]: [W_uk[h]^T q_nope_h | q_pe_h] (or [q_pe_h]).
  float* qt = ws.get(kQt, n * H_ * dq);
  if (nope_ && absorbed_) {
    ops::copy_heads(q, H_ * qw_, qw_, qt, H_ * dq, dq, n, H_, r_);  // stored: already W_uk^T q_nope
  } else if (nope_) {
    ops::matmul_heads(q, wuk_, qt, uk_absorb_dims(n, dq));  // qt_h = W_uk[h]^T q_nope_h
  }
  rope_queries(q, n, pos, qt + (nope_ ? r_ : 0), H_ * dq, dq);

  ops::AttentionDims a = absorbed_attention_dims(n, pos0, dq);
  a.k_stride = cs;
  a.v_stride = cs;
  if (n_ks_ > 0) {
    // Key scales: the explicit score matrix of shared_kv_attention, scaled per key.
    const float* c = f32_rows(cache, pos0 + n, ws);  // [T, r + R + n_ks]
    a.key_scale = c + r_ + R_;
    a.key_scale_stride = cs;
    a.key_scale_group = H_ / n_ks_;
    float* scores = ws.get(kScores, ops::shared_kv_scores_size(a));  // [n * H, T]
    ops::shared_kv_attention(qt, nope_ ? c : c + r_, c, o, a, scores);
  } else if (n < ops::kKvDecodeBatch) {
    // Decode: the cache rows in their dtype, each read once for all heads.
    const ops::TypedRows rows = cache.rows().view();
    ops::kv_decode_attention(qt, nope_ ? rows : ops::offset_cols(rows, r_), rows, o, a);
  } else {
    const float* c = f32_rows(cache, pos0 + n, ws);  // [T, r + R]
    const int64_t n_scores = ops::shared_kv_scores_size(a);
    float* scores = n_scores > 0 ? ws.get(kScores, n_scores) : nullptr;  // [n * H, T]
    ops::shared_kv_attention(qt, nope_ ? c : c + r_, c, o, a, scores);
  }
}

}  // namespace mlar
