// Dense projection with weights in the Hugging Face [out, in] layout.
#pragma once
#include <cstdint>

namespace mlar::ops {

// y[n, out] = x[n, in] * W[out, in]^T (+ bias[out] on every row).
// x, W, y are row-major and contiguous; bias may be null; y must not alias x or W.
// Parallel over output columns (or rows when `out` is small) with OpenMP, each
// worker calling single-threaded OpenBLAS on its slice (see ops/threads.h).
void matmul(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t in, int64_t out);

// The same on row-strided views: row t of x starts at x + t * x_stride (>= in) and
// row t of y at y + t * y_stride (>= out), e.g. a part of wider cache rows.
void matmul_strided(const float* x, int64_t x_stride, const float* w, const float* bias, float* y, int64_t y_stride,
                    int64_t n, int64_t in, int64_t out);

}  // namespace mlar::ops
