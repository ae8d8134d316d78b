// The AVX2 level of ops/typed_kernels.h (AVX2 + FMA + F16C). Every function carries
// the target attribute, so this file builds with default flags; it runs only where
// cpu_max_level() allows.
#include <immintrin.h>

#include "ops/typed_kernels.h"
#include "util/half.h"

#define MLAR_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace mlar::ops::detail {
namespace {

// 8 weights from row p at element i, widened to f32.
template <DType T>
MLAR_AVX2 inline __m256 load8(const void* p, int64_t i) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == DType::BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else return _mm256_cvtph_ps(h);
  }
}

template <DType T>
inline float load1(const void* p, int64_t i) {
  if constexpr (T == DType::F32) return static_cast<const float*>(p)[i];
  else if constexpr (T == DType::BF16) return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  else return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

MLAR_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Rows [r, r + R) of W against N activation rows: R * N independent accumulators.
template <DType T, int R, int N>
MLAR_AVX2 void dot_block(const char* w, int64_t row_bytes, int64_t in, const float* x, int64_t xs, int64_t r,
                         float* y, int64_t ys) {
  __m256 acc[R][N];
  const void* rows[R];
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) {
    rows[k] = w + (r + k) * row_bytes;
#pragma GCC unroll 4
    for (int t = 0; t < N; ++t) acc[k][t] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 <= in; i += 8) {
    __m256 xv[N];
#pragma GCC unroll 4
    for (int t = 0; t < N; ++t) xv[t] = _mm256_loadu_ps(x + t * xs + i);
#pragma GCC unroll 8
    for (int k = 0; k < R; ++k) {
      const __m256 wv = load8<T>(rows[k], i);
#pragma GCC unroll 4
      for (int t = 0; t < N; ++t) acc[k][t] = _mm256_fmadd_ps(wv, xv[t], acc[k][t]);
    }
  }
  if (i < in) {  // the last in % 8 elements, zero-padded to one more vector step
    const int64_t left = in - i;
    alignas(32) float xt[N][8] = {}, wt[8] = {};
    for (int t = 0; t < N; ++t)
      for (int64_t j = 0; j < left; ++j) xt[t][j] = x[t * xs + i + j];
#pragma GCC unroll 8
    for (int k = 0; k < R; ++k) {
      for (int64_t j = 0; j < left; ++j) wt[j] = load1<T>(rows[k], i + j);
      const __m256 wv = _mm256_load_ps(wt);
#pragma GCC unroll 4
      for (int t = 0; t < N; ++t) acc[k][t] = _mm256_fmadd_ps(wv, _mm256_load_ps(xt[t]), acc[k][t]);
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int t = 0; t < N; ++t) y[t * ys + r + k] = hsum(acc[k][t]);
}

template <DType T, int N>
MLAR_AVX2 void dot_rows_n(const void* w, int64_t in, const float* x, int64_t xs, int64_t r0, int64_t r1, float* y,
                          int64_t ys) {
  constexpr int R = N == 1 ? 8 : N == 2 ? 4 : 2;  // at most 8 accumulators of the 16 registers
  const auto* wb = static_cast<const char*>(w);
  const int64_t row_bytes = in * static_cast<int64_t>(T == DType::F32 ? 4 : 2);
  int64_t r = r0;
  for (; r + R <= r1; r += R) dot_block<T, R, N>(wb, row_bytes, in, x, xs, r, y, ys);
  for (; r < r1; ++r) dot_block<T, 1, N>(wb, row_bytes, in, x, xs, r, y, ys);
}

template <DType T>
MLAR_AVX2 void dot_rows_t(const void* w, int64_t in, const float* x, int64_t xs, int nx, int64_t r0, int64_t r1,
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

MLAR_AVX2 void dot_rows(const void* w, DType wt, int64_t in, const float* x, int64_t xs, int nx, int64_t r0,
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

MLAR_AVX2 void widen(const void* src, DType t, float* d, int64_t n) {
  const auto* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (t == DType::BF16) {
    for (; i + 8 <= n; i += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    for (; i < n; ++i) d[i] = bf16_to_f32(s[i]);
  } else {
    // vcvtph2ps quiets signalling NaNs; util/half.h keeps the payload, so a block
    // holding a NaN takes the scalar path (rare: weights hold no NaN).
    const __m128i abs_mask = _mm_set1_epi16(0x7fff), inf = _mm_set1_epi16(0x7c00);
    for (; i + 8 <= n; i += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
      if (_mm_movemask_epi8(_mm_cmpgt_epi16(_mm_and_si128(h, abs_mask), inf))) {
        for (int64_t j = i; j < i + 8; ++j) d[j] = f16_to_f32(s[j]);
      } else {
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
      }
    }
    for (; i < n; ++i) d[i] = f16_to_f32(s[i]);
  }
}

// 8 floats -> 8 bf16 in the low 16 bits of each lane, as f32_to_bf16 rounds.
MLAR_AVX2 inline __m256i round_bf16(__m256i u) {
  const __m256i hi = _mm256_srli_epi32(u, 16);
  const __m256i nan =
      _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(hi, _mm256_set1_epi32(1)));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
  return _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
}

MLAR_AVX2 void narrow(const float* src, DType t, void* dst, int64_t n) {
  auto* d = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  if (t == DType::BF16) {
    for (; i + 16 <= n; i += 16) {
      const __m256i a = round_bf16(_mm256_castps_si256(_mm256_loadu_ps(src + i)));
      const __m256i b = round_bf16(_mm256_castps_si256(_mm256_loadu_ps(src + i + 8)));
      // packus interleaves the 128-bit lanes: a.lo b.lo a.hi b.hi -> a.lo a.hi b.lo b.hi
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8));
    }
    for (; i < n; ++i) d[i] = f32_to_bf16(src[i]);
  } else {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u)), quiet = _mm256_set1_epi32(0x7fc00000);
    for (; i + 8 <= n; i += 8) {
      const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src + i));
      // NaNs become sign | 0x7e00, as f32_to_f16 makes them.
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
      const __m256i v = _mm256_blendv_epi8(u, _mm256_or_si256(_mm256_and_si256(u, sign), quiet), nan);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), _mm256_cvtps_ph(_mm256_castsi256_ps(v), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) d[i] = f32_to_f16(src[i]);
  }
}

}  // namespace

const TypedKernels& avx2_kernels() {
  static const TypedKernels k{dot_rows, widen, narrow};
  return k;
}

}  // namespace mlar::ops::detail
