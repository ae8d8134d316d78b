// The AVX-512 level of ops/typed_kernels.h (AVX-512F + AVX-512BW; no VL, no BF16
// instructions: activations stay f32). Every function carries the target attribute,
// so this file builds with default flags; it runs only where cpu_max_level() allows.
//
// GCC 12's AVX-512 intrinsics start from self-initialised "undefined" registers,
// which its (maybe-)uninitialized warnings flag once inlined (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "ops/typed_kernels.h"
#include "util/half.h"

#define MLAR_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

namespace mlar::ops::detail {
namespace {

// 16 weights from row p at element i, widened to f32: all of them, or those in `m`
// (the others read as 0 and are not touched in memory).
// 16 BF16 / F16 values -> float32 (exact).
template <DType T>
MLAR_AVX512 inline __m512 widen16(__m256i h) {
  if constexpr (T == DType::BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  else return _mm512_cvtph_ps(h);
}

template <DType T>
MLAR_AVX512 inline __m512 load16(const void* p, int64_t i) {
  if constexpr (T == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(p) + i);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == DType::BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else return _mm512_cvtph_ps(h);
  }
}

template <DType T>
MLAR_AVX512 inline __m512 load16_masked(const void* p, int64_t i, __mmask16 m) {
  if constexpr (T == DType::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  } else {
    const __m256i h =
        _mm512_castsi512_si256(_mm512_maskz_loadu_epi16(static_cast<__mmask32>(m), static_cast<const uint16_t*>(p) + i));
    if constexpr (T == DType::BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else return _mm512_cvtph_ps(h);
  }
}

// Rows [r, r + R) of W against N activation rows: R * N independent accumulators.
template <DType T, int R, int N>
MLAR_AVX512 void dot_block(const char* w, int64_t row_bytes, int64_t in, const float* x, int64_t xs, int64_t r,
                           float* y, int64_t ys) {
  constexpr int64_t kBytes = T == DType::F32 ? 4 : 2;
  __m512 acc[R][N];
  const void* rows[R];
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) {
    rows[k] = w + (r + k) * row_bytes;
#pragma GCC unroll 4
    for (int t = 0; t < N; ++t) acc[k][t] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  if constexpr (T != DType::F32) {
    // 32 half-width values (one 64-byte line) per load and one prefetch a line; each
    // accumulator still takes elements i..i+15 then i+16..i+31, as the loop below
    // would, so the sums are the same to the bit.
    for (; i + 32 <= in; i += 32) {
      __m512 xa[N], xb[N];
#pragma GCC unroll 4
      for (int t = 0; t < N; ++t) {
        xa[t] = _mm512_loadu_ps(x + t * xs + i);
        xb[t] = _mm512_loadu_ps(x + t * xs + i + 16);
      }
#pragma GCC unroll 8
      for (int k = 0; k < R; ++k) {
        if constexpr (N == 1)
          _mm_prefetch(static_cast<const char*>(rows[k]) + R * row_bytes + i * kBytes, _MM_HINT_T1);
        const __m512i h = _mm512_loadu_si512(static_cast<const uint16_t*>(rows[k]) + i);
        const __m512 wa = widen16<T>(_mm512_castsi512_si256(h));
        const __m512 wb = widen16<T>(_mm512_extracti64x4_epi64(h, 1));
#pragma GCC unroll 4
        for (int t = 0; t < N; ++t) acc[k][t] = _mm512_fmadd_ps(wa, xa[t], acc[k][t]);
#pragma GCC unroll 4
        for (int t = 0; t < N; ++t) acc[k][t] = _mm512_fmadd_ps(wb, xb[t], acc[k][t]);
      }
    }
  }
  for (; i + 16 <= in; i += 16) {
    __m512 xv[N];
#pragma GCC unroll 4
    for (int t = 0; t < N; ++t) xv[t] = _mm512_loadu_ps(x + t * xs + i);
#pragma GCC unroll 8
    for (int k = 0; k < R; ++k) {
      // Decode: the same columns of the next block's rows, so that their streams are
      // under way when the block starts (measured ~10% on BF16 decode, 2-core Zen 5),
      // into L2 (T1): 10-30% faster than into L1 on the 2-core Zen 4 (interleaved runs).
      if constexpr (N == 1)
        _mm_prefetch(static_cast<const char*>(rows[k]) + R * row_bytes + i * kBytes, _MM_HINT_T1);
      const __m512 wv = load16<T>(rows[k], i);
#pragma GCC unroll 4
      for (int t = 0; t < N; ++t) acc[k][t] = _mm512_fmadd_ps(wv, xv[t], acc[k][t]);
    }
  }
  if (i < in) {
    const __mmask16 m = static_cast<__mmask16>((1u << (in - i)) - 1u);
    __m512 xv[N];
#pragma GCC unroll 4
    for (int t = 0; t < N; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x + t * xs + i);
#pragma GCC unroll 8
    for (int k = 0; k < R; ++k) {
      const __m512 wv = load16_masked<T>(rows[k], i, m);
#pragma GCC unroll 4
      for (int t = 0; t < N; ++t) acc[k][t] = _mm512_fmadd_ps(wv, xv[t], acc[k][t]);
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int t = 0; t < N; ++t) y[t * ys + r + k] = _mm512_reduce_add_ps(acc[k][t]);
}

template <DType T, int N>
MLAR_AVX512 void dot_rows_n(const void* w, int64_t in, const float* x, int64_t xs, int64_t r0, int64_t r1, float* y,
                            int64_t ys) {
  constexpr int R = N == 1 ? 8 : 4;  // 8 to 16 accumulators of the 32 registers
  const auto* wb = static_cast<const char*>(w);
  const int64_t row_bytes = in * static_cast<int64_t>(T == DType::F32 ? 4 : 2);
  int64_t r = r0;
  for (; r + R <= r1; r += R) dot_block<T, R, N>(wb, row_bytes, in, x, xs, r, y, ys);
  for (; r < r1; ++r) dot_block<T, 1, N>(wb, row_bytes, in, x, xs, r, y, ys);
}

template <DType T>
MLAR_AVX512 void dot_rows_t(const void* w, int64_t in, const float* x, int64_t xs, int nx, int64_t r0, int64_t r1,
                            float* y, int64_t ys) {
  switch (nx) {
    case 1:
      return dot_rows_n<T, 1>(w, in, x, xs, r0, r1, y, ys);
    case 2:
      return dot_rows_n<T, 2>(w, in, x, xs, r0, r1, y, ys);
    case 3:
      return dot_rows_n<T, 3>(w, in, x, xs, r0, r1, y, ys);
    default:
      return dot_rows_n<T, 4>(w, in, x, xs, r0, r1, y, ys);
  }
}

MLAR_AVX512 void dot_rows(const void* w, DType wt, int64_t in, const float* x, int64_t xs, int nx, int64_t r0,
                          int64_t r1, float* y, int64_t ys) {
  switch (wt) {
    case DType::BF16:
      return dot_rows_t<DType::BF16>(w, in, x, xs, nx, r0, r1, y, ys);
    case DType::F16:
      return dot_rows_t<DType::F16>(w, in, x, xs, nx, r0, r1, y, ys);
    default:
      return dot_rows_t<DType::F32>(w, in, x, xs, nx, r0, r1, y, ys);
  }
}

MLAR_AVX512 void widen_bf16(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i v = _mm512_loadu_si512(s + i);
    _mm512_storeu_si512(d + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16));
    _mm512_storeu_si512(d + i + 16, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16));
  }
  for (; i < n; i += 16) {
    const int64_t left = n - i < 16 ? n - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << left) - 1u);
    const __m256i h = _mm512_castsi512_si256(_mm512_maskz_loadu_epi16(static_cast<__mmask32>(m), s + i));
    _mm512_mask_storeu_ps(d + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
  }
}

// vcvtph2ps quiets signalling NaNs; util/half.h keeps the payload as it is, so a
// block holding a NaN takes the scalar path (rare: weights hold no NaN).
MLAR_AVX512 void widen_f16(const uint16_t* s, float* d, int64_t n) {
  const __m512i abs_mask = _mm512_set1_epi16(0x7fff), inf = _mm512_set1_epi16(0x7c00);
  int64_t i = 0;
  for (; i < n; i += 32) {
    const int64_t left = n - i < 32 ? n - i : 32;
    const __mmask32 m = left == 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1u);
    const __m512i v = _mm512_maskz_loadu_epi16(m, s + i);
    if (_mm512_cmpgt_epu16_mask(_mm512_and_si512(v, abs_mask), inf)) {
      for (int64_t j = i; j < i + left; ++j) d[j] = f16_to_f32(s[j]);
      continue;
    }
    const __mmask16 lo = static_cast<__mmask16>(m), hi = static_cast<__mmask16>(m >> 16);
    _mm512_mask_storeu_ps(d + i, lo, _mm512_cvtph_ps(_mm512_castsi512_si256(v)));
    if (hi) _mm512_mask_storeu_ps(d + i + 16, hi, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)));
  }
}

MLAR_AVX512 void widen(const void* src, DType t, float* dst, int64_t n) {
  if (t == DType::BF16) widen_bf16(static_cast<const uint16_t*>(src), dst, n);
  else widen_f16(static_cast<const uint16_t*>(src), dst, n);
}

// 16 floats -> 16 bf16 in the low 16 bits of each lane, as f32_to_bf16 rounds.
MLAR_AVX512 inline __m512i round_bf16(__m512i u) {
  const __m512i hi = _mm512_srli_epi32(u, 16);
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
  return _mm512_mask_blend_epi32(nan, rounded, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}

// 16 floats -> 16 halves; NaNs become sign | 0x7e00 as f32_to_f16 makes them.
MLAR_AVX512 inline __m256i round_f16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  const __m512i quiet =
      _mm512_or_si512(_mm512_and_si512(u, _mm512_set1_epi32(static_cast<int>(0x80000000u))), _mm512_set1_epi32(0x7fc00000));
  return _mm512_cvtps_ph(_mm512_castsi512_ps(_mm512_mask_blend_epi32(nan, u, quiet)), _MM_FROUND_TO_NEAREST_INT);
}

MLAR_AVX512 void narrow(const float* src, DType t, void* dst, int64_t n) {
  auto* d = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  if (t == DType::BF16) {
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                          _mm512_cvtepi32_epi16(round_bf16(_mm512_castps_si512(_mm512_loadu_ps(src + i)))));
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
      _mm512_mask_cvtepi32_storeu_epi16(d + i, m, round_bf16(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, src + i))));
    }
  } else {
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), round_f16(_mm512_loadu_ps(src + i)));
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
      const __m512i h = _mm512_cvtepu16_epi32(round_f16(_mm512_maskz_loadu_ps(m, src + i)));
      _mm512_mask_cvtepi32_storeu_epi16(d + i, m, h);
    }
  }
}

}  // namespace

const TypedKernels& avx512_kernels() {
  static const TypedKernels k{dot_rows, widen, narrow};
  return k;
}

}  // namespace mlar::ops::detail
