#include "runtime/gqa_attention.h"

#include "ops/kv_attention.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {
namespace {

// Workspace slots of this layer type.
enum Slot : size_t { kQ, kAtt, kK, kV };
constexpr size_t kPos = 0;  // integer slot

}  // namespace

GqaAttention::GqaAttention(const ModelConfig& c, const LayerWeights& w, std::vector<float> inv_freq)
    : D_(c.hidden_size),
      n_h_(c.num_heads),
      n_kv_(c.num_kv_heads),
      d_(c.head_dim),
      eps_(static_cast<float>(c.rms_norm_eps)),
      pairs_(rope_pairs(c.rope_layout)),
      w_(w),
      inv_freq_(std::move(inv_freq)) {
  if (static_cast<int64_t>(inv_freq_.size()) != d_ / 2)
    fail("GqaAttention: {} inverse frequencies for head size {}", inv_freq_.size(), d_);
  if (c.qk_norm && (w.q_norm.shape != Shape{d_} || w.k_norm.shape != Shape{d_}))
    fail("GqaAttention: q/k norms of shapes {} and {} for head size {}", shape_str(w.q_norm.shape),
         shape_str(w.k_norm.shape), d_);
  qk_norm_ = c.qk_norm;
}

std::unique_ptr<LayerCache> GqaAttention::make_cache(DType dtype) const {
  return std::make_unique<GqaLayerCache>(n_kv_ * d_, dtype, n_kv_);
}

void GqaAttention::forward(const float* x, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws,
                           float* out) const {
  float* att = ws.get(kAtt, n * n_h_ * d_);  // [n, n_h * d] attention output per head
  attend(x, n, pos0, cache, ws, att);
  ops::linear(att, w_.wo, out, n);
}

void GqaAttention::attend(const float* x, int64_t n, int64_t pos0, LayerCache& cache_base, Workspace& ws,
                          float* att) const {
  auto* cache = dynamic_cast<GqaLayerCache*>(&cache_base);
  if (!cache) fail("GqaAttention: given a cache of another attention type");
  if (cache->k().heads() != n_kv_ || cache->v().heads() != n_kv_)
    fail("GqaAttention: a cache of {} heads for {} kv heads (make it with make_cache)", cache->k().heads(), n_kv_);
  const int64_t qd = n_h_ * d_, kvd = n_kv_ * d_;

  float* q = ws.get(kQ, n * qd);      // [n, n_h * d]
  int64_t* pos = ws.get_i64(kPos, n);  // [n] positions
  for (int64_t i = 0; i < n; ++i) pos[i] = pos0 + i;

  // K and V of the new tokens in f32 ([n, n_kv * d] each), then rounded into the
  // cache rows pos0 .. pos0+n-1 in the cache's dtype.
  float* k_new = ws.get(kK, n * kvd);
  float* v_new = ws.get(kV, n * kvd);
  ops::linear(x, w_.wq, w_.bq, q, n);
  ops::linear(x, w_.wk, w_.bk, k_new, n);
  ops::linear(x, w_.wv, w_.bv, v_new, n);
  if (qk_norm_) {  // every head's q and k (rows of d values) normalised before RoPE
    ops::rmsnorm(q, w_.q_norm.ptr(), q, n * n_h_, d_, eps_);
    ops::rmsnorm(k_new, w_.k_norm.ptr(), k_new, n * n_kv_, d_, eps_);
  }
  ops::rope(q, n, n_h_, d_, pos, inv_freq_.data(), pairs_);
  ops::rope(k_new, n, n_kv_, d_, pos, inv_freq_.data(), pairs_);
  cache->k().write(pos0, k_new, kvd, n);
  cache->v().write(pos0, v_new, kvd, n);

  ops::AttentionDims a = ops::AttentionDims::grouped(n, n_h_, n_kv_, d_, pos0);
  a.k_head_stride = cache->k().head_stride();
  a.v_head_stride = cache->v().head_stride();
  ops::kv_attention(q, cache->k().view(), cache->v().view(), att, a);
}

}  // namespace mlar
