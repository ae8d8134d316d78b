// Dense projection y = x W^T + b (HF [out, in] weights) and its backward, on
// row-strided views so a part of wider rows (one head of a query row) can be a
// projection's input or output.
#pragma once
#include <cstdint>

namespace mlar::train {

struct LinearDims {
  int64_t n = 0;    // rows (tokens)
  int64_t in = 0;   // input values per row
  int64_t out = 0;  // output values per row
  // Floats between consecutive rows of x (and dx) and of y (and dy); 0 = packed.
  int64_t x_stride = 0, y_stride = 0;
  int64_t xs() const { return x_stride > 0 ? x_stride : in; }
  int64_t ys() const { return y_stride > 0 ? y_stride : out; }
};

// y[n, out] = x[n, in] W[out, in]^T (+ b[out]). b may be null. Blocks of 64 rows.
void linear_forward(const float* x, const float* w, const float* b, float* y, const LinearDims& d);

// Given dy = dL/dy [n, out] (rows y_stride apart):
//   dx  = dy W            [n, in]   (rows x_stride apart; overwritten, or added when
//                                    accumulate_dx); skipped when dx is null
//   dw += dy^T x          [out, in] skipped when dw is null
//   db += sum_rows dy     [out]     in double; skipped when db is null
// Parallel over blocks of fixed size (rows for y and dx, output rows for dw), one
// single-threaded sgemm each: every value is computed by the same BLAS call however
// many threads run, so results depend neither on scheduling nor on the thread count.
void linear_backward(const float* x, const float* w, const float* dy, float* dx, bool accumulate_dx, float* dw,
                     float* db, const LinearDims& d);

}  // namespace mlar::train
