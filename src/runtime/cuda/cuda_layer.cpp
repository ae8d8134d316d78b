#include "runtime/cuda/cuda_layer.h"

#include "ops/cuda/attention.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/linear.h"

namespace mlar {

using cuda::linear;

namespace {

cuda::DeviceTensor f32_to_device(const TypedTensor& t) { return cuda::to_device(t, DType::F32); }

}  // namespace

void CudaLayerScratch::reserve(const ModelConfig& c, int64_t n) {
  if (n <= capacity) return;
  const int64_t D = c.hidden_size, F = c.intermediate_size;
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  auto grow = [n](cuda::DeviceBuffer& b, int64_t cols) { b.reserve(static_cast<size_t>(n * cols) * sizeof(float)); };
  grow(x, D);
  grow(a, D);
  grow(q, qd);
  grow(att, qd);
  grow(k, kvd);
  grow(v, kvd);
  grow(gate, F);
  grow(up, F);
  capacity = n;
}

CudaLayer::CudaLayer(const ModelConfig& c, int64_t layer, const LayerWeights& L, const MlaLayerWeights* mla) {
  attn_norm_ = f32_to_device(L.attn_norm);
  ffn_norm_ = f32_to_device(L.ffn_norm);
  w_gate_ = cuda::to_device(L.w_gate);
  w_up_ = cuda::to_device(L.w_up);
  w_down_ = cuda::to_device(L.w_down);
  if (c.mla) {
    mla_ = std::make_unique<CudaMlaLayer>(c, layer, mla ? *mla : L.mla);
    return;
  }
  q_norm_ = f32_to_device(L.q_norm);
  k_norm_ = f32_to_device(L.k_norm);
  wq_ = cuda::to_device(L.wq);
  wk_ = cuda::to_device(L.wk);
  wv_ = cuda::to_device(L.wv);
  wo_ = cuda::to_device(L.wo);
  bq_ = f32_to_device(L.bq);
  bk_ = f32_to_device(L.bk);
  bv_ = f32_to_device(L.bv);
}

size_t CudaLayer::weight_bytes() const {
  size_t b = mla_ ? mla_->weight_bytes() : 0;
  for (const cuda::DeviceTensor* t : {&attn_norm_, &ffn_norm_, &q_norm_, &k_norm_, &wq_, &wk_, &wv_, &wo_, &bq_, &bk_,
                                      &bv_, &w_gate_, &w_up_, &w_down_})
    b += t->buf.bytes();
  return b;
}

void CudaLayer::attention_input(const ModelConfig& c, const float* h, int64_t h_stride, float* x, int64_t x_stride,
                                int64_t n) const {
  cuda::rmsnorm(h, h_stride, attn_norm_.f32(), x, x_stride, n, c.hidden_size, static_cast<float>(c.rms_norm_eps));
}

void CudaLayer::forward(const ModelConfig& c, float* h, int64_t n, int64_t pos0, const int64_t* dpos,
                        const float* inv_freq, ops::RopePairs pairs, const CudaLayerCache& cache,
                        CudaLayerScratch& s) const {
  const int64_t D = c.hidden_size, F = c.intermediate_size;
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, d = c.head_dim, qd = nh * d, kvd = nkv * d;
  const float eps = static_cast<float>(c.rms_norm_eps);
  s.reserve(c, n);
  float* x = s.x.as<float>();  // [n, D] normalised input of a block
  float* a = s.a.as<float>();  // [n, D] block output
  attention_input(c, h, D, x, D, n);
  if (mla_) {
    mla_->forward(x, n, pos0, dpos, cache.k, cache.dtype, s.mla, a);
  } else {
    // GQA attention block (MLA.md §1): x [n, D] -> a [n, D], K/V rows appended to the cache.
    float* q = s.q.as<float>();  // [n, n_h d]
    float* att = s.att.as<float>();
    float* k = s.k.as<float>();  // [n, n_kv d]
    float* v = s.v.as<float>();
    linear(x, wq_, bq_, q, n);
    linear(x, wk_, bk_, k, n);
    linear(x, wv_, bv_, v, n);
    if (c.qk_norm) {
      cuda::rmsnorm(q, d, q_norm_.f32(), q, d, n * nh, d, eps);
      cuda::rmsnorm(k, d, k_norm_.f32(), k, d, n * nkv, d, eps);
    }
    cuda::rope(q, n, nh, d, d, qd, dpos, inv_freq, pairs);
    cuda::rope(k, n, nkv, d, d, kvd, dpos, inv_freq, pairs);
    const size_t row_bytes = static_cast<size_t>(kvd) * dtype_size(cache.dtype);
    char* kc = static_cast<char*>(cache.k) + static_cast<size_t>(pos0) * row_bytes;
    char* vc = static_cast<char*>(cache.v) + static_cast<size_t>(pos0) * row_bytes;
    cuda::round_rows(k, kvd, n, kvd, {kc, cache.dtype, kvd});
    cuda::round_rows(v, kvd, n, kvd, {vc, cache.dtype, kvd});
    cuda::attention(q, {cache.k, cache.dtype, kvd}, {cache.v, cache.dtype, kvd}, att,
                    ops::AttentionDims::grouped(n, nh, nkv, d, pos0));
    linear(att, wo_, {}, a, n);
  }
  cuda::add(h, a, h, n * D);

  float* gate = s.gate.as<float>();  // [n, F]
  float* up = s.up.as<float>();
  cuda::rmsnorm(h, D, ffn_norm_.f32(), x, D, n, D, eps);
  linear(x, w_gate_, {}, gate, n);
  linear(x, w_up_, {}, up, n);
  cuda::swiglu(gate, up, gate, n * F);
  linear(gate, w_down_, {}, a, n);
  cuda::add(h, a, h, n * D);
}

}  // namespace mlar
