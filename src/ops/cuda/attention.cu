#include "ops/cuda/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "ops/cuda/attention_plan.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/device.h"
#include "ops/cuda/mla_decode.h"
#include "ops/cuda/typed_load.cuh"

namespace mlar::cuda {
namespace {

using detail::AttnParams;
using detail::to_f32;

constexpr int kThreads = 128;
constexpr int kMaxHeadsPerBlock = 16;

// Shared memory of the tiled kernel, in floats.
int64_t tiled_smem_floats(int64_t ht, int64_t kt, int64_t dk, int64_t dv) {
  return ht * dk + kt * (dk + 1) + kt * dv + ht * kt + ht * dv + 3 * ht;
}

// grid: x = key range (split), y = kv head * head_tiles + head tile, z = sequence * n_q + query.
template <typename T>
__global__ void __launch_bounds__(kThreads) tiled_kernel(AttnParams p, int kt) {
  extern __shared__ float smem[];
  const int64_t ht = p.heads_per_block, dk = p.dk, dv = p.dv;
  float* qs = smem;                 // [ht, dk]
  float* ks = qs + ht * dk;         // [kt, dk + 1]
  float* vs = ks + kt * (dk + 1);   // [kt, dv]
  float* ss = vs + kt * dv;         // [ht, kt] scores, then probabilities
  float* os = ss + ht * kt;         // [ht, dv] unnormalised output
  float* ms = os + ht * dv;         // [ht] running max
  float* ls = ms + ht;              // [ht] running sum
  float* as = ls + ht;              // [ht] rescale of this tile

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t z = blockIdx.z, b = z / p.n_q, qi = z % p.n_q;
  const int64_t group = p.n_heads / p.n_kv;
  const int64_t j = blockIdx.y / p.head_tiles;
  const int64_t h0 = j * group + (blockIdx.y % p.head_tiles) * ht;   // first query head of the block
  const int64_t hn = min(ht, j * group + group - h0);                // heads it covers
  const int64_t keys = p.q_start + qi + 1;
  const int64_t t0 = blockIdx.x * p.keys_per_split, t1 = min(keys, t0 + p.keys_per_split);

  // 32-bit indices inside the block (shared memory holds < 2^31 floats); rows of
  // shared memory are walked row by row, so no division per element.
  const int idk = static_cast<int>(dk), idv = static_cast<int>(dv), iht = static_cast<int>(ht);
  const float* q = p.q + b * p.q_batch + qi * p.q_stride + h0 * dk;
  for (int h = 0; h < iht; ++h)
    for (int d = tid; d < idk; d += kThreads) qs[h * idk + d] = h < hn ? q[h * dk + d] * p.scale : 0.0f;
  for (int e = tid; e < iht * idv; e += kThreads) os[e] = 0.0f;
  for (int h = tid; h < iht; h += kThreads) {
    ms[h] = -INFINITY;
    ls[h] = 0.0f;
  }
  const T* kb = static_cast<const T*>(p.k) + b * p.kv_batch + j * dk;
  const T* vb = static_cast<const T*>(p.v) + b * p.kv_batch + j * dv;
  for (int64_t tile = t0; tile < t1; tile += kt) {
    const int nk = static_cast<int>(min(static_cast<int64_t>(kt), t1 - tile));
    __syncthreads();  // the previous tile's readers are done
#pragma unroll 4
    for (int t = 0; t < nk; ++t) {
      const T* kr = kb + (tile + t) * p.k_stride;
      const T* vr = vb + (tile + t) * p.v_stride;
      for (int d = tid; d < idk; d += kThreads) ks[t * (idk + 1) + d] = to_f32(kr[d]);
      for (int c = tid; c < idv; c += kThreads) vs[t * idv + c] = to_f32(vr[c]);
    }
    __syncthreads();
    for (int e = tid; e < iht * kt; e += kThreads) {
      const int h = e / kt, t = e - h * kt;
      float s = -INFINITY;
      if (t < nk && h < hn) {
        const float* qh = qs + h * idk;
        const float* kr = ks + t * (idk + 1);
        float acc = 0.0f;
        for (int d = 0; d < idk; ++d) acc = fmaf(qh[d], kr[d], acc);
        s = acc;
      }
      ss[e] = s;
    }
    __syncthreads();
    for (int h = warp; h < iht; h += kThreads / 32) {
      float mx = -INFINITY;
      for (int t = lane; t < kt; t += 32) mx = fmaxf(mx, ss[h * kt + t]);
      mx = detail::warp_max(mx);
      const float m_old = ms[h], m_new = fmaxf(m_old, mx);
      float sum = 0.0f;
      for (int t = lane; t < kt; t += 32) {
        const float s = ss[h * kt + t];
        const float pr = s == -INFINITY ? 0.0f : __expf(s - m_new);
        ss[h * kt + t] = pr;
        sum += pr;
      }
      sum = detail::warp_sum(sum);
      if (lane == 0) {
        const float alpha = m_old == -INFINITY ? 0.0f : __expf(m_old - m_new);
        as[h] = alpha;
        ls[h] = ls[h] * alpha + sum;
        ms[h] = m_new;
      }
    }
    __syncthreads();
    for (int h = 0; h < iht; ++h) {
      const float* pr = ss + h * kt;
      const float alpha = as[h];
      for (int c = tid; c < idv; c += kThreads) {
        float acc = os[h * idv + c] * alpha;
        for (int t = 0; t < nk; ++t) acc = fmaf(pr[t], vs[t * idv + c], acc);
        os[h * idv + c] = acc;
      }
    }
  }
  __syncthreads();
  const int64_t row = (z * p.splits + blockIdx.x) * p.n_heads + h0;  // partial row of head h0
  for (int e = tid; e < static_cast<int>(hn) * idv; e += kThreads) p.part_o[row * dv + e] = os[e];
  for (int h = tid; h < hn; h += kThreads) {
    p.part_ml[(row + h) * 2] = ms[h];
    p.part_ml[(row + h) * 2 + 1] = ls[h];
  }
}

// grid: x = head, y = sequence * n_q + query; kCombineThreads threads. Merges the
// splits' partial outputs: the splits' weights exp(m_s - max) are computed once, in
// parallel, into shared memory ([splits] floats), then each thread sums its output
// columns over the splits (independent loads).
constexpr int kCombineThreads = 128;

__device__ float block_reduce(float v, bool is_max, float* red) {
  v = is_max ? detail::warp_max(v) : detail::warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // red is reused
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kCombineThreads / 32; ++w) r = is_max ? fmaxf(r, red[w]) : r + red[w];
  return r;
}

__global__ void combine_kernel(const float* part_o, const float* part_ml, float* out, int64_t n_q, int64_t n_heads,
                               int64_t dv, int splits, int64_t out_stride, int64_t out_batch) {
  extern __shared__ float wts[];  // [splits]
  __shared__ float red[kCombineThreads / 32];
  const int64_t h = blockIdx.x, z = blockIdx.y, b = z / n_q, qi = z % n_q;
  const float* ml = part_ml + (z * splits * n_heads + h) * 2;  // split s at ml + s * n_heads * 2
  const int64_t mls = n_heads * 2;
  float mx = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += kCombineThreads) mx = fmaxf(mx, ml[s * mls]);
  mx = block_reduce(mx, true, red);
  float l = 0.0f;
  for (int s = threadIdx.x; s < splits; s += kCombineThreads) {
    const float m = ml[s * mls];
    const float w = m == -INFINITY ? 0.0f : __expf(m - mx);
    wts[s] = w;
    l += w * ml[s * mls + 1];
  }
  l = block_reduce(l, false, red);  // also orders the wts writes before the reads below
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  const float* po = part_o + (z * splits * n_heads + h) * dv;  // split s at po + s * n_heads * dv
  const int64_t pos = n_heads * dv;
  float* o = out + b * out_batch + qi * out_stride + h * dv;
  for (int64_t c = threadIdx.x; c < dv; c += kCombineThreads) {
    float acc = 0.0f;
#pragma unroll 4
    for (int s = 0; s < splits; ++s) acc = fmaf(wts[s], po[s * pos + c], acc);
    o[c] = acc * inv;
  }
}

// Opts the kernel into `smem` bytes of dynamic shared memory once per size increase.
template <typename T>
void launch_tiled(const dim3& grid, size_t smem, const AttnParams& p, int kt) {
  static size_t opted = 48 * 1024;
  if (smem > opted) {
    MLAR_CUDA_CHECK(cudaFuncSetAttribute(tiled_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
    opted = smem;
  }
  tiled_kernel<T><<<grid, kThreads, smem>>>(p, kt);
}

int sm_count() {
  static int n = device_info().sm_count;
  return n;
}

bool force_tiled() {
  const char* e = std::getenv("MLAR_CUDA_ATTN");
  return e && std::strcmp(e, "tiled") == 0;
}

}  // namespace

AttentionPath attention_path(ops::TypedRows k, ops::TypedRows v, const ops::AttentionDims& d) {
  if (!force_tiled() && detail::mla_tensor_core_fits(k, v, d)) return AttentionPath::TensorCore;
  return AttentionPath::Tiled;
}

void attention(const float* q, ops::TypedRows k, ops::TypedRows v, float* out, const ops::AttentionDims& d,
               const AttentionBatch& batch) {
  if (d.key_scale) fail("cuda::attention: per-key score scales (the cached key-norm MLA form) run on the CPU only");
  if (d.n_kv_heads <= 0 || d.n_heads % d.n_kv_heads != 0)
    fail("cuda::attention: {} query heads do not group over {} kv heads", d.n_heads, d.n_kv_heads);
  if (k.dtype != v.dtype) fail("cuda::attention: keys are {} but values are {}", dtype_name(k.dtype), dtype_name(v.dtype));
  if (d.n_q <= 0 || batch.count <= 0) return;
  AttnParams p;
  p.q = q;
  p.k = k.data;
  p.v = v.data;
  p.n_q = d.n_q;
  p.n_heads = d.n_heads;
  p.n_kv = d.n_kv_heads;
  p.dk = d.dk;
  p.dv = d.dv;
  p.q_stride = d.q_stride ? d.q_stride : d.n_heads * d.dk;
  p.k_stride = k.stride;
  p.v_stride = v.stride;
  p.q_batch = batch.q_stride;
  p.kv_batch = batch.kv_stride;
  p.q_start = d.q_start;
  p.scale = d.scale;
  const int64_t out_stride = d.out_stride ? d.out_stride : d.n_heads * d.dv;
  const int64_t keys = d.q_start + d.n_q;
  const bool tc = attention_path(k, v, d) == AttentionPath::TensorCore;

  int64_t kt = 32;
  const int64_t group = d.n_heads / d.n_kv_heads;
  if (tc) {
    p.heads_per_block = detail::mla_heads_per_block(d.n_heads, d.dv);
    kt = detail::kMlaKeysPerTile;
  } else {
    p.heads_per_block = static_cast<int>(std::min<int64_t>(group, kMaxHeadsPerBlock));
    while (kt > 8 && tiled_smem_floats(p.heads_per_block, kt, d.dk, d.dv) * 4 > 96 * 1024) kt /= 2;
  }
  p.head_tiles = static_cast<int>((group + p.heads_per_block - 1) / p.heads_per_block);
  // Key ranges: enough blocks for two waves at batch 1, at least 2 tiles per range.
  const int64_t blocks = batch.count * d.n_q * d.n_kv_heads * p.head_tiles;
  const int64_t want = std::max<int64_t>(1, (2 * sm_count() + blocks - 1) / blocks);
  // Each range writes a partial output of n_heads x (dv + 2) floats per query, merged
  // afterwards: at most a quarter of the bytes of the rows it reads.
  const int64_t row_bytes = (d.n_kv_heads * (d.dk + (tc ? 0 : d.dv))) * static_cast<int64_t>(dtype_size(k.dtype));
  const int64_t part_cap = std::max<int64_t>(1, keys * row_bytes / (4 * d.n_heads * (d.dv + 2) * 4));
  const int64_t max_splits = std::max<int64_t>(1, std::min(keys / (2 * kt), part_cap));
  p.splits = static_cast<int>(std::min(want, max_splits));
  p.keys_per_split = (keys + p.splits - 1) / p.splits;
  p.keys_per_split = (p.keys_per_split + kt - 1) / kt * kt;
  p.splits = static_cast<int>((keys + p.keys_per_split - 1) / p.keys_per_split);

  static DeviceBuffer part;  // partial outputs and (max, sum) pairs, reused across calls
  const int64_t rows = batch.count * d.n_q * p.splits * d.n_heads;
  part.reserve(static_cast<size_t>(rows * (d.dv + 2)) * sizeof(float));
  p.part_o = part.as<float>();
  p.part_ml = p.part_o + rows * d.dv;

  const dim3 grid(static_cast<unsigned>(p.splits), static_cast<unsigned>(d.n_kv_heads * p.head_tiles),
                  static_cast<unsigned>(batch.count * d.n_q));
  if (tc) {
    detail::mla_tensor_core_launch(p, grid);
  } else {
    const size_t smem = static_cast<size_t>(tiled_smem_floats(p.heads_per_block, kt, d.dk, d.dv)) * sizeof(float);
    MLAR_CUDA_DISPATCH_FLOAT(k.dtype, "cuda::attention", launch_tiled<T>(grid, smem, p, static_cast<int>(kt)));
    check_launch("attention (tiled)");
  }
  const dim3 cgrid(static_cast<unsigned>(d.n_heads), static_cast<unsigned>(batch.count * d.n_q));
  combine_kernel<<<cgrid, kCombineThreads, static_cast<size_t>(p.splits) * sizeof(float)>>>(
      p.part_o, p.part_ml, out, d.n_q, d.n_heads, d.dv, p.splits, out_stride, batch.out_stride);
  check_launch("attention (combine)");
}

}  // namespace mlar::cuda
