// The arithmetic bound of a step: multiply-adds per second the ops threads reach in a
// loop of independent fused multiply-adds at the widest vectors of the kernels' dispatch
// level (ops/cpu_features.h), measured in the run that uses it. Attention over an MLA
// latent is bound by arithmetic on a CPU (bench_context's roofline columns).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "bench_util.h"
#include "ops/cpu_features.h"
#include "ops/parallel.h"
#include "ops/threads.h"

namespace mlar::bench {

// 12 independent accumulators (4-cycle FMA latency x 2 pipes and more); returns a
// value the caller keeps so the loop cannot be dropped. kDot: vdpbf16ps (AVX512-BF16,
// 32 multiply-adds per instruction) instead of vfmadd (16); the FMA loop emits no
// BF16 instruction, so it runs on any AVX-512 CPU.
template <bool kDot>
__attribute__((target("avx512f,avx512bf16"))) inline float loop_avx512(int64_t n) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
  if constexpr (kDot) {
    const __m512bh bh = _mm512_cvtne2ps_pbh(b, b), ch = _mm512_cvtne2ps_pbh(c, c);
    for (int64_t k = 0; k < n; ++k)
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) a[i] = _mm512_dpbf16_ps(a[i], bh, ch);
  } else {
    for (int64_t k = 0; k < n; ++k)
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], b, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  alignas(64) float o[16];
  _mm512_store_ps(o, s);
  return o[0] + o[15];
}
__attribute__((target("avx2,fma"))) inline float fma_loop_avx2(int64_t n) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
  for (int64_t k = 0; k < n; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  alignas(32) float o[8];
  _mm256_store_ps(o, s);
  return o[0] + o[7];
}
inline float fma_loop_sse2(int64_t n) {
  __m128 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm_set1_ps(static_cast<float>(i));
  const __m128 b = _mm_set1_ps(0.999f), c = _mm_set1_ps(1e-3f);
  for (int64_t k = 0; k < n; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm_add_ps(_mm_mul_ps(a[i], b), c);  // a multiply and an add
  __m128 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm_add_ps(s, a[i]);
  return _mm_cvtss_f32(s);
}

// Multiply-adds (float lanes) per second over the ops threads, best of `reps`; with
// `bf16_dot`, those of vdpbf16ps (32 per instruction; 0 below the avx512bf16 level),
// the rate of the MLA decode kernel over BF16 caches at that level (ops/kv_attention.h).
inline double fma_peak_macs_per_s(int reps = 3, float* keep = nullptr, bool bf16_dot = false) {
  const ops::CpuLevel level = ops::cpu_active_level();
  if (bf16_dot && level < ops::CpuLevel::Avx512Bf16) return 0.0;
  const int lanes = bf16_dot ? 32 : level >= ops::CpuLevel::Avx512 ? 16 : level == ops::CpuLevel::Avx2 ? 8 : 4;
  // About 7 ms a thread at 3.6 GHz (an FMA or a dot product an instruction a cycle; a shorter loop lets a
  // pool thread that wakes late run after the others).
  const int64_t threads = ops::cpu_threads(), iters = bf16_dot ? 4'000'000 : 2'000'000;
  float sink = 0;
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    std::vector<float> out(static_cast<size_t>(threads), 0.0f);
    const auto t0 = clock_type::now();
    ops::parallel_for(threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        out[static_cast<size_t>(i)] = bf16_dot                             ? loop_avx512<true>(iters)
                                      : level >= ops::CpuLevel::Avx512 ? loop_avx512<false>(iters)
                                      : level == ops::CpuLevel::Avx2 ? fma_loop_avx2(iters)
                                                                     : fma_loop_sse2(iters);
    });
    best = std::min(best, seconds_since(t0));
    for (float x : out) sink += x;
  }
  if (keep) *keep += sink;
  return static_cast<double>(threads) * static_cast<double>(iters) * 12.0 * lanes / best;
}

}  // namespace mlar::bench
