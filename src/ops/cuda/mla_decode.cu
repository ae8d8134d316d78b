#include "ops/cuda/mla_decode.h"

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/device.h"
#include "ops/cuda/typed_load.cuh"

namespace mlar::cuda::detail {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kKt = static_cast<int>(kMlaKeysPerTile);
constexpr int kPad = 8;  // bf16 elements of padding per shared row (bank-conflict-free fragments)
constexpr int kSPitch = kKt + 4;
constexpr int kPPitch = kKt + kPad;

struct Smem {
  int64_t q_pitch, k_pitch;  // bf16 elements per row of Qs / Ks
  size_t qs, ks, ss, ps, ml, total;  // byte offsets
};

// The S phase splits dk into KS shares so that all 8 warps work: KS * (HB / 16) * 2 = kWarps.
constexpr int score_shares(int mt) { return kWarps / (2 * mt); }

Smem smem_layout(int64_t hb, int64_t dk) {
  Smem s{};
  const int64_t ks_rows = score_shares(static_cast<int>(hb / 16)) * hb;  // partial score rows
  s.q_pitch = dk + kPad;
  s.k_pitch = dk + kPad;
  s.qs = 0;
  s.ks = s.qs + static_cast<size_t>(hb * s.q_pitch) * 2;
  s.ss = s.ks + static_cast<size_t>(2 * kKt * s.k_pitch) * 2;
  s.ps = s.ss + static_cast<size_t>(ks_rows * kSPitch) * 4;
  s.ml = s.ps + static_cast<size_t>(hb * kPPitch) * 2;
  s.total = s.ml + static_cast<size_t>(3 * hb) * 4;
  return s;
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int n = valid ? 16 : 0;  // 0: zero-fill
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// B fragments of m16n8k16 (k x n, "col") from row-major [k][n] shared rows: 8 rows of 16 bytes per 8x8
// matrix, transposed on load. x4: lanes 0-15 address the k rows of n tile 0, lanes 16-31 those of n tile 1.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[4], const __nv_bfloat16* p) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
}

__device__ __forceinline__ uint32_t ld32(const __nv_bfloat16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// MT: 16-row tiles of query heads; NTMAX: 8-column tiles of O each warp may own.
template <int MT, int NTMAX>
__global__ void __launch_bounds__(kThreads, 1) mla_mma_kernel(AttnParams p, Smem L) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int HB = MT * 16;
  __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(smem + L.qs);  // [HB, q_pitch]
  __nv_bfloat16* ks = reinterpret_cast<__nv_bfloat16*>(smem + L.ks);  // [2, kKt, k_pitch]
  constexpr int KS = score_shares(MT);
  float* ss = reinterpret_cast<float*>(smem + L.ss);                  // [KS, HB, kSPitch] partial scores
  __nv_bfloat16* ps = reinterpret_cast<__nv_bfloat16*>(smem + L.ps);  // [HB, kPPitch]
  float* ms = reinterpret_cast<float*>(smem + L.ml);                  // [HB]
  float* ls = ms + HB;
  float* as = ls + HB;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;  // fragment row group, thread in group
  const int64_t dk = p.dk, dv = p.dv, qp = L.q_pitch, kp = L.k_pitch;
  const int64_t z = blockIdx.z, b = z / p.n_q, qi = z % p.n_q;
  const int64_t h0 = static_cast<int64_t>(blockIdx.y) * HB;
  const int64_t hn = min(static_cast<int64_t>(HB), p.n_heads - h0);
  const int64_t keys = p.q_start + qi + 1;
  const int64_t t0 = blockIdx.x * p.keys_per_split, t1 = min(keys, t0 + p.keys_per_split);
  const int nt = static_cast<int>(dv / (8 * kWarps));  // O column tiles of this warp
  const int64_t c0 = warp * nt * 8;                     // first O column of this warp

  const __nv_bfloat16* kb = static_cast<const __nv_bfloat16*>(p.k) + b * p.kv_batch;
  const int64_t chunks = dk / 8;  // 16-byte pieces per row
  auto load_tile = [&](int64_t tile, int buf) {
    __nv_bfloat16* dst = ks + static_cast<int64_t>(buf) * kKt * kp;
    for (int64_t e = tid; e < kKt * chunks; e += kThreads) {
      const int64_t t = e / chunks, c = e % chunks;
      const bool ok = tile + t < t1;
      const __nv_bfloat16* src = kb + (ok ? (tile + t) * p.k_stride : 0) + c * 8;
      cp_async16(dst + t * kp + c * 8, src, ok);
    }
    cp_async_commit();
  };
  if (t0 < t1) load_tile(t0, 0);

  const float* q = p.q + b * p.q_batch + qi * p.q_stride + h0 * dk;
  for (int64_t e = tid; e < HB * dk; e += kThreads) {
    const int64_t h = e / dk, d = e % dk;
    qs[h * qp + d] = __float2bfloat16_rn(h < hn ? q[h * dk + d] * p.scale : 0.0f);
  }
  for (int h = tid; h < HB; h += kThreads) {
    ms[h] = -INFINITY;
    ls[h] = 0.0f;
  }
  float acc[MT][NTMAX][4];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int n = 0; n < NTMAX; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[m][n][i] = 0.0f;

  int buf = 0;
  for (int64_t tile = t0; tile < t1; tile += kKt, buf ^= 1) {
    if (tile + kKt < t1) {
      load_tile(tile + kKt, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // tile `buf` (and Qs, ms, ls on the first pass) visible to all
    const __nv_bfloat16* kt = ks + static_cast<int64_t>(buf) * kKt * kp;
    // S = Q K^T, MT x 4 tiles of 16 x 8. Warp w: row block m, n tiles 2 np and 2 np + 1, every KS-th step
    // of 16 along dk from step ks (partial sums, added in a fixed order below). Each query fragment
    // serves 2 mma; 4 independent accumulators keep the tensor cores fed.
    {
      const int ks = warp % KS, np = (warp / KS) % 2, m = warp / (2 * KS);
      const __nv_bfloat16* qa = qs + (m * 16 + g) * qp + tq * 2;
      const __nv_bfloat16* k0 = kt + (np * 16 + g) * kp + tq * 2;
      const __nv_bfloat16* k1 = k0 + 8 * kp;
      float c[2][2][4] = {};  // [n of the pair][even / odd step][fragment]
      const int steps = static_cast<int>(dk / 16);
      auto step = [&](int st, float (&c0)[4], float (&c1)[4]) {
        const int kk = st * 16;
        const uint32_t a0 = ld32(qa + kk), a1 = ld32(qa + 8 * qp + kk), a2 = ld32(qa + kk + 8),
                       a3 = ld32(qa + 8 * qp + kk + 8);
        mma_bf16(c0, a0, a1, a2, a3, ld32(k0 + kk), ld32(k0 + kk + 8));
        mma_bf16(c1, a0, a1, a2, a3, ld32(k1 + kk), ld32(k1 + kk + 8));
      };
      for (int st = ks; st < steps; st += 2 * KS) {
        step(st, c[0][0], c[1][0]);
        if (st + KS < steps) step(st + KS, c[0][1], c[1][1]);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        float* sr = ss + (ks * HB + m * 16 + g) * kSPitch + (np * 2 + j) * 8 + tq * 2;
        sr[0] = c[j][0][0] + c[j][1][0];
        sr[1] = c[j][0][1] + c[j][1][1];
        sr[8 * kSPitch] = c[j][0][2] + c[j][1][2];
        sr[8 * kSPitch + 1] = c[j][0][3] + c[j][1][3];
      }
    }
    __syncthreads();
    // Online softmax: a warp per head row, a lane per key.
    const int64_t nk = min(static_cast<int64_t>(kKt), t1 - tile);
    for (int h = warp; h < HB; h += kWarps) {
      float s = -INFINITY;
      if (lane < nk && h < hn) {
        s = ss[h * kSPitch + lane];
#pragma unroll
        for (int k = 1; k < KS; ++k) s += ss[(k * HB + h) * kSPitch + lane];
      }
      const float mx = warp_max(s);
      const float m_old = ms[h], m_new = fmaxf(m_old, mx);
      const __nv_bfloat16 pb = __float2bfloat16_rn(s == -INFINITY ? 0.0f : __expf(s - m_new));
      ps[h * kPPitch + lane] = pb;
      const float sum = warp_sum(__bfloat162float(pb));
      if (lane == 0) {
        const float alpha = m_old == -INFINITY ? 0.0f : __expf(m_old - m_new);
        as[h] = alpha;
        ls[h] = ls[h] * alpha + sum;
        ms[h] = m_new;
      }
    }
    __syncthreads();
    // O = O * alpha + P V, V = the tile's first dv columns; this warp's columns [c0, c0 + 8 nt).
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      const float a_lo = as[m * 16 + g], a_hi = as[m * 16 + g + 8];
#pragma unroll
      for (int n = 0; n < NTMAX; ++n) {
        acc[m][n][0] *= a_lo;
        acc[m][n][1] *= a_lo;
        acc[m][n][2] *= a_hi;
        acc[m][n][3] *= a_hi;
      }
    }
#pragma unroll
    for (int k16 = 0; k16 < kKt; k16 += 16) {
      uint32_t a[MT][4];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const __nv_bfloat16* pa = ps + (m * 16 + g) * kPPitch + k16 + tq * 2;
        a[m][0] = ld32(pa);
        a[m][1] = ld32(pa + 8 * kPPitch);
        a[m][2] = ld32(pa + 8);
        a[m][3] = ld32(pa + 8 * kPPitch + 8);
      }
      // V fragments of n tiles n, n + 1: lanes 0-15 address keys k16 + (lane & 15) of tile n, lanes 16-31
      // those of tile n + 1 (unused by the x2 load of a last odd tile).
      const __nv_bfloat16* vr = kt + (k16 + (lane & 15)) * kp + c0 + (lane >> 4) * 8;
#pragma unroll
      for (int n = 0; n < NTMAX; n += 2) {
        if (n < nt) {
          uint32_t bv[4];
          if (n + 1 < nt) ldmatrix_x4_trans(bv, vr + n * 8);
          else ldmatrix_x2_trans(bv, vr + n * 8);
#pragma unroll
          for (int m = 0; m < MT; ++m) mma_bf16(acc[m][n], a[m][0], a[m][1], a[m][2], a[m][3], bv[0], bv[1]);
          if (n + 1 < nt) {
#pragma unroll
            for (int m = 0; m < MT; ++m) mma_bf16(acc[m][n + 1], a[m][0], a[m][1], a[m][2], a[m][3], bv[2], bv[3]);
          }
        }
      }
    }
    __syncthreads();  // buffer `buf` is refilled two tiles on
  }
  if (t0 >= t1) __syncthreads();
  const int64_t row = (z * p.splits + blockIdx.x) * p.n_heads + h0;
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int n = 0; n < NTMAX; ++n) {
      if (n < nt) {
        const int64_t col = c0 + n * 8 + tq * 2;
        const int64_t r_lo = m * 16 + g, r_hi = r_lo + 8;
        if (r_lo < hn) {
          p.part_o[(row + r_lo) * dv + col] = acc[m][n][0];
          p.part_o[(row + r_lo) * dv + col + 1] = acc[m][n][1];
        }
        if (r_hi < hn) {
          p.part_o[(row + r_hi) * dv + col] = acc[m][n][2];
          p.part_o[(row + r_hi) * dv + col + 1] = acc[m][n][3];
        }
      }
    }
  }
  for (int h = tid; h < hn; h += kThreads) {
    p.part_ml[(row + h) * 2] = ms[h];
    p.part_ml[(row + h) * 2 + 1] = ls[h];
  }
}

template <int MT, int NTMAX>
void launch(const AttnParams& p, const dim3& grid) {
  const Smem L = smem_layout(MT * 16, p.dk);
  MLAR_CUDA_CHECK(cudaFuncSetAttribute(mla_mma_kernel<MT, NTMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(L.total)));
  mla_mma_kernel<MT, NTMAX><<<grid, kThreads, L.total>>>(p, L);
}

}  // namespace

bool mla_tensor_core_fits(ops::TypedRows k, ops::TypedRows v, const ops::AttentionDims& d) {
  if (k.dtype != DType::BF16 || v.dtype != DType::BF16 || d.n_kv_heads != 1) return false;
  if (k.data != v.data || k.stride != v.stride || k.stride % 8 != 0) return false;
  if ((reinterpret_cast<uintptr_t>(k.data) & 15u) != 0) return false;
  if (d.dk % 16 != 0 || d.dv % 64 != 0 || d.dv > d.dk || d.dk > 1152 || d.dv > 1024) return false;
  return true;
}

int mla_heads_per_block(int64_t n_heads, int64_t dv) {
  const int64_t nt = dv / 64;  // O column tiles per warp
  int mt = n_heads <= 16 ? 1 : n_heads <= 32 ? 2 : 4;
  while (mt > 1 && mt * (nt <= 8 ? 8 : 16) > 32) mt /= 2;  // accumulators: MT x NTMAX x 4 <= 128 registers
  return mt * 16;
}

void mla_tensor_core_launch(const AttnParams& p, const dim3& grid) {
  const int mt = p.heads_per_block / 16;
  const bool wide = p.dv / 64 > 8;
  if (!wide && mt == 1) launch<1, 8>(p, grid);
  else if (!wide && mt == 2) launch<2, 8>(p, grid);
  else if (!wide && mt == 4) launch<4, 8>(p, grid);
  else if (wide && mt == 1) launch<1, 16>(p, grid);
  else if (wide && mt == 2) launch<2, 16>(p, grid);
  else fail("cuda::attention: no tensor-core kernel for {} heads per block and dv {}", p.heads_per_block, p.dv);
  check_launch("attention (tensor-core MLA)");
}

}  // namespace mlar::cuda::detail
