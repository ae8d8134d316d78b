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
  // Offsets inside the block (shared memory, heads, columns) in 32 bits: a 64-bit division per element
  // is many instructions on the GPU; key positions and global offsets stay 64-bit.
  const int ht = p.heads_per_block, dk = static_cast<int>(p.dk), dv = static_cast<int>(p.dv);
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
  const int hn = static_cast<int>(min(static_cast<int64_t>(ht), j * group + group - h0));  // heads it covers
  const int64_t keys = p.q_start + qi + 1;
  const int64_t t0 = blockIdx.x * p.keys_per_split, t1 = min(keys, t0 + p.keys_per_split);

  const float* q = p.q + b * p.q_batch + qi * p.q_stride + h0 * dk;
  for (int e = tid; e < ht * dk; e += kThreads) qs[e] = e / dk < hn ? q[e] * p.scale : 0.0f;
  for (int e = tid; e < ht * dv; e += kThreads) os[e] = 0.0f;
  for (int h = tid; h < ht; h += kThreads) {
    ms[h] = -INFINITY;
    ls[h] = 0.0f;
  }
  const T* kb = static_cast<const T*>(p.k) + b * p.kv_batch + j * dk;
  const T* vb = static_cast<const T*>(p.v) + b * p.kv_batch + j * dv;
  for (int64_t tile = t0; tile < t1; tile += kt) {
    const int nk = static_cast<int>(min(static_cast<int64_t>(kt), t1 - tile));
    const T* kt0 = kb + tile * p.k_stride;  // this tile's first key row
    const T* vt0 = vb + tile * p.v_stride;
    __syncthreads();  // the previous tile's readers are done
    for (int e = tid; e < nk * dk; e += kThreads) {
      const int t = e / dk, d = e - t * dk;
      ks[t * (dk + 1) + d] = to_f32(kt0[static_cast<int64_t>(t) * p.k_stride + d]);
    }
    for (int e = tid; e < nk * dv; e += kThreads) {
      const int t = e / dv, c = e - t * dv;
      vs[t * dv + c] = to_f32(vt0[static_cast<int64_t>(t) * p.v_stride + c]);
    }
    __syncthreads();
    for (int e = tid; e < ht * kt; e += kThreads) {
      const int h = e / kt, t = e - h * kt;
      float s = -INFINITY;
      if (t < nk && h < hn) {
        const float* qh = qs + h * dk;
        const float* kr = ks + t * (dk + 1);
        float acc = 0.0f;
        for (int d = 0; d < dk; ++d) acc = fmaf(qh[d], kr[d], acc);
        s = acc;
      }
      ss[e] = s;
    }
    __syncthreads();
    for (int h = warp; h < ht; h += kThreads / 32) {
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
    for (int e = tid; e < ht * dv; e += kThreads) {
      const int h = e / dv, c = e - h * dv;
      const float* pr = ss + h * kt;
      float acc = os[e] * as[h];
      for (int t = 0; t < nk; ++t) acc = fmaf(pr[t], vs[t * dv + c], acc);
      os[e] = acc;
    }
  }
  __syncthreads();
  const int64_t row = (z * p.splits + blockIdx.x) * p.n_heads + h0;  // partial row of head h0
  for (int e = tid; e < hn * dv; e += kThreads) p.part_o[row * dv + e] = os[e];
  for (int h = tid; h < hn; h += kThreads) {
    p.part_ml[(row + h) * 2] = ms[h];
    p.part_ml[(row + h) * 2 + 1] = ls[h];
  }
}

// Block-wide reductions over kCombineThreads threads (red: kCombineThreads / 32 floats of shared memory).
constexpr int kCombineThreads = 128;
__device__ float block_max(float x, float* red) {
  x = detail::warp_max(x);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = x;
  __syncthreads();
  float r = -INFINITY;
  for (int w = 0; w < kCombineThreads / 32; ++w) r = fmaxf(r, red[w]);
  __syncthreads();
  return r;
}
__device__ float block_sum(float x, float* red) {
  x = detail::warp_sum(x);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = x;
  __syncthreads();
  float r = 0.0f;
  for (int w = 0; w < kCombineThreads / 32; ++w) r += red[w];
  __syncthreads();
  return r;
}

// grid: x = head, y = sequence * n_q + query; kCombineThreads threads, shared memory splits + 4 floats.
// Merges the splits' partial outputs: the weight of each split, exp(m_s - max) / sum, is computed once
// (in parallel over the splits), then every output column sums its splits' partial columns.
__global__ void __launch_bounds__(kCombineThreads) combine_kernel(const float* part_o, const float* part_ml,
                                                                 float* out, int n_q, int n_heads, int dv,
                                                                 int splits, int64_t out_stride, int64_t out_batch) {
  extern __shared__ float w[];  // [splits] weights, then [4] reduction scratch
  float* red = w + splits;
  const int h = blockIdx.x, z = blockIdx.y, b = z / n_q, qi = z % n_q;
  const float* ml = part_ml + (static_cast<int64_t>(z) * splits * n_heads + h) * 2;  // split s: ml[s * 2 * n_heads]
  float mx = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += kCombineThreads) mx = fmaxf(mx, ml[s * 2 * n_heads]);
  mx = block_max(mx, red);
  float l = 0.0f;
  for (int s = threadIdx.x; s < splits; s += kCombineThreads) {
    const float m = ml[s * 2 * n_heads];
    const float e = m == -INFINITY ? 0.0f : __expf(m - mx);
    w[s] = e;
    l += e * ml[s * 2 * n_heads + 1];
  }
  l = block_sum(l, red);  // its barrier also publishes w[]
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  const float* po = part_o + (static_cast<int64_t>(z) * splits * n_heads + h) * dv;  // split s: po[s * n_heads * dv]
  const int64_t s_stride = static_cast<int64_t>(n_heads) * dv;
  float* o = out + b * out_batch + qi * out_stride + static_cast<int64_t>(h) * dv;
  for (int c = threadIdx.x; c < dv; c += kCombineThreads) {
    float acc = 0.0f;
    for (int s = 0; s < splits; ++s) acc = fmaf(w[s], po[s * s_stride + c], acc);
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

AttentionPlan attention_plan(ops::TypedRows k, ops::TypedRows v, const ops::AttentionDims& d,
                             const AttentionBatch& batch) {
  AttentionPlan pl;
  pl.path = attention_path(k, v, d);
  const int64_t group = d.n_heads / d.n_kv_heads, keys = d.q_start + d.n_q;
  if (pl.path == AttentionPath::TensorCore) {
    pl.heads_per_block = detail::mla_heads_per_block(d.n_heads, d.dv);
    pl.keys_per_tile = detail::kMlaKeysPerTile;
  } else {
    pl.heads_per_block = static_cast<int>(std::min<int64_t>(group, kMaxHeadsPerBlock));
    while (pl.keys_per_tile > 8 && tiled_smem_floats(pl.heads_per_block, pl.keys_per_tile, d.dk, d.dv) * 4 > 96 * 1024)
      pl.keys_per_tile /= 2;
  }
  const int64_t kt = pl.keys_per_tile;
  pl.head_tiles = static_cast<int>((group + pl.heads_per_block - 1) / pl.heads_per_block);
  // Key ranges, at least 2 tiles each. The tensor-core kernel runs one block per SM (registers, shared
  // memory): as many ranges as fit in ONE round of blocks, never a partial second round (measured on an
  // H100, Llama-3-8B 25% shape at 64K, batch 8: 17 ranges = 136 blocks 1176 us, 33 ranges = 264 blocks
  // 465 us; batch 1, DeepSeek's shape: 64 ranges x 2 head tiles 367 us, 128 x 2 555 us;
  // docs/benchmarks-gpu.md). The tiled kernel fits several blocks per SM: two waves' worth.
  const int64_t blocks = batch.count * d.n_q * d.n_kv_heads * pl.head_tiles;
  const int64_t want = pl.path == AttentionPath::TensorCore ? std::max<int64_t>(1, sm_count() / blocks)
                                                            : std::max<int64_t>(1, (2 * sm_count() + blocks - 1) / blocks);
  const int64_t max_splits = std::max<int64_t>(1, keys / (2 * kt));
  int64_t splits = std::min(want, max_splits);
  if (const char* e = std::getenv("MLAR_CUDA_SPLITS"); e && std::atoi(e) > 0)  // benchmarks: a fixed count
    splits = std::min<int64_t>(std::atoi(e), max_splits);
  pl.keys_per_split = (keys + splits - 1) / splits;
  pl.keys_per_split = (pl.keys_per_split + kt - 1) / kt * kt;
  pl.splits = static_cast<int>((keys + pl.keys_per_split - 1) / pl.keys_per_split);
  return pl;
}

void attention(const float* q, ops::TypedRows k, ops::TypedRows v, float* out, const ops::AttentionDims& d,
               const AttentionBatch& batch) {
  if (d.key_scale) fail("cuda::attention: per-key score scales (the cached key-norm MLA form) run on the CPU only");
  if (d.k_head_stride || d.v_head_stride) fail("cuda::attention: head-major caches (head strides) run on the CPU only");
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
  const AttentionPlan plan = attention_plan(k, v, d, batch);
  const bool tc = plan.path == AttentionPath::TensorCore;
  p.heads_per_block = plan.heads_per_block;
  p.head_tiles = plan.head_tiles;
  p.splits = plan.splits;
  p.keys_per_split = plan.keys_per_split;
  const int64_t kt = plan.keys_per_tile;

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
  const size_t csmem = static_cast<size_t>(p.splits + kCombineThreads / 32) * sizeof(float);
  combine_kernel<<<cgrid, kCombineThreads, csmem>>>(p.part_o, p.part_ml, out, static_cast<int>(d.n_q),
                                                    static_cast<int>(d.n_heads), static_cast<int>(d.dv), p.splits,
                                                    out_stride, batch.out_stride);
  check_launch("attention (combine)");
}

}  // namespace mlar::cuda
