// Internal to ops/: the per-instruction-level kernels behind ops/typed_matmul.h.
// One table per level (typed_kernels_{scalar,avx2,avx512}.cpp); typed_matmul.cpp
// picks the table of cpu_active_level() and does the threading.
#pragma once
#include <cstdint>

#include "ops/cpu_features.h"
#include "tensor/dtype.h"

namespace mlar::ops::detail {

// The most activation rows dot_rows takes at once.
constexpr int kMaxDotRows = 4;

struct TypedKernels {
  // y[t * ys + r] = sum_i x[t * xs + i] * W[r, i] for r in [r0, r1), t in [0, nx),
  // 1 <= nx <= kMaxDotRows; W: [*, in] of `wt` (F32 | BF16 | F16), f32 accumulation.
  // Each W row is read once for all nx activation rows.
  void (*dot_rows)(const void* w, DType wt, int64_t in, const float* x, int64_t xs, int nx, int64_t r0, int64_t r1,
                   float* y, int64_t ys);
  // dst[i] = float(src[i]), src F16 | BF16; bit-exact with util/half.h (NaN payloads too).
  void (*widen)(const void* src, DType t, float* dst, int64_t n);
  // dst[i] = src[i] rounded to F16 | BF16, nearest even; bit-exact with util/half.h.
  void (*narrow)(const float* src, DType t, void* dst, int64_t n);
};

const TypedKernels& scalar_kernels();
const TypedKernels& avx2_kernels();    // only on a CPU with AVX2, FMA, F16C
const TypedKernels& avx512_kernels();  // only on a CPU with AVX-512F, AVX-512BW

}  // namespace mlar::ops::detail
