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

  const float* q = p.q + b * p.q_batch + qi * p.q_stride + h0 * dk;
  for (int64_t e = tid; e < ht * dk; e += kThreads) qs[e] = e / dk < hn ? q[e] * p.scale : 0.0f;
  for (int64_t e = tid; e < ht * dv; e += kThreads) os[e] = 0.0f;
  for (int64_t h = tid; h < ht; h += kThreads) {
    ms[h] = -INFINITY;
    ls[h] = 0.0f;
  }
  const T* kb = static_cast<const T*>(p.k) + b * p.kv_batch + j * dk;
  const T* vb = static_cast<const T*>(p.v) + b * p.kv_batch + j * dv;
  for (int64_t tile = t0; tile < t1; tile += kt) {
    const int64_t nk = min(static_cast<int64_t>(kt), t1 - tile);
    __syncthreads();  // the previous tile's readers are done
    for (int64_t e = tid; e < nk * dk; e += kThreads) {
      const int64_t t = e / dk, d = e % dk;
      ks[t * (dk + 1) + d] = to_f32(kb[(tile + t) * p.k_stride + d]);
    }
    for (int64_t e = tid; e < nk * dv; e += kThreads) {
      const int64_t t = e / dv, c = e % dv;
      vs[t * dv + c] = to_f32(vb[(tile + t) * p.v_stride + c]);
    }
    __syncthreads();
    for (int64_t e = tid; e < ht * kt; e += kThreads) {
      const int64_t h = e / kt, t = e % kt;
      float s = -INFINITY;
      if (t < nk && h < hn) {
        const float* qh = qs + h * dk;
        const float* kr = ks + t * (dk + 1);
        float acc = 0.0f;
        for (int64_t d = 0; d < dk; ++d) acc = fmaf(qh[d], kr[d], acc);
        s = acc;
      }
      ss[e] = s;
    }
    __syncthreads();
    for (int64_t h = warp; h < ht; h += kThreads / 32) {
      float mx = -INFINITY;
      for (int64_t t = lane; t < kt; t += 32) mx = fmaxf(mx, ss[h * kt + t]);
      mx = detail::warp_max(mx);
      const float m_old = ms[h], m_new = fmaxf(m_old, mx);
      float sum = 0.0f;
      for (int64_t t = lane; t < kt; t += 32) {
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
    for (int64_t e = tid; e < ht * dv; e += kThreads) {
      const int64_t h = e / dv, c = e % dv;
      const float* pr = ss + h * kt;
      float acc = os[e] * as[h];
      for (int64_t t = 0; t < nk; ++t) acc = fmaf(pr[t], vs[t * dv + c], acc);
      os[e] = acc;
    }
  }
  __syncthreads();
  const int64_t row = (z * p.splits + blockIdx.x) * p.n_heads + h0;  // partial row of head h0
  for (int64_t e = tid; e < hn * dv; e += kThreads) p.part_o[row * dv + e] = os[e];
  for (int64_t h = tid; h < hn; h += kThreads) {
    p.part_ml[(row + h) * 2] = ms[h];
    p.part_ml[(row + h) * 2 + 1] = ls[h];
  }
}

// grid: x = head, y = sequence * n_q + query. Merges the splits' partial outputs.
__global__ void combine_kernel(const float* part_o, const float* part_ml, float* out, int64_t n_q, int64_t n_heads,
                               int64_t dv, int splits, int64_t out_stride, int64_t out_batch) {
  const int64_t h = blockIdx.x, z = blockIdx.y, b = z / n_q, qi = z % n_q;
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, part_ml[((z * splits + s) * n_heads + h) * 2]);
  float l = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float m = part_ml[((z * splits + s) * n_heads + h) * 2];
    if (m != -INFINITY) l += __expf(m - mx) * part_ml[((z * splits + s) * n_heads + h) * 2 + 1];
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  float* o = out + b * out_batch + qi * out_stride + h * dv;
  for (int64_t c = threadIdx.x; c < dv; c += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float m = part_ml[((z * splits + s) * n_heads + h) * 2];
      if (m != -INFINITY) acc += __expf(m - mx) * part_o[((z * splits + s) * n_heads + h) * dv + c];
    }
    o[c] = acc * inv;
  }
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
  const int64_t max_splits = std::max<int64_t>(1, keys / (2 * kt));
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
    MLAR_CUDA_DISPATCH_FLOAT(k.dtype, "cuda::attention", {
      MLAR_CUDA_CHECK(cudaFuncSetAttribute(tiled_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
      tiled_kernel<T><<<grid, kThreads, smem>>>(p, static_cast<int>(kt));
    });
    check_launch("attention (tiled)");
  }
  const dim3 cgrid(static_cast<unsigned>(d.n_heads), static_cast<unsigned>(batch.count * d.n_q));
  combine_kernel<<<cgrid, 128>>>(p.part_o, p.part_ml, out, d.n_q, d.n_heads, d.dv, p.splits, out_stride,
                                 batch.out_stride);
  check_launch("attention (combine)");
}

}  // namespace mlar::cuda
