// Per-head projections on strided views: every head h applies its own small matrix
// W_h to its own part of each row (or to one part shared by all heads). MLA uses it
// for the per-head up-projections (MLA.md §2): W_uk[h] c, W_uk[h]^T q_nope_h,
// W_uv[h] o_h, W_qr[h] q_rope_in_h.
#pragma once
#include <cstdint>

namespace mlar::ops {

struct HeadMatmulDims {
  int64_t n = 0;      // rows (tokens)
  int64_t heads = 0;  // heads, each with its own matrix
  int64_t in = 0;     // input values per head
  int64_t out = 0;    // output values per head
  // Row t of head h: x + t * x_stride + h * x_head_stride (x_head_stride 0: every
  // head reads the same input), y + t * y_stride + h * y_head_stride.
  int64_t x_stride = 0, x_head_stride = 0;
  int64_t y_stride = 0, y_head_stride = 0;
  // W_h starts at w + h * w_head_stride, row-major: [out, in] when w_in_out is false
  // (the HF layout), [in, out] when true.
  int64_t w_head_stride = 0;
  bool w_in_out = false;
};

// For every head h and row t: y_h(t) = op(W_h) x_h(t), op(W) = W for [out, in]
// matrices and W^T for [in, out] ones. So an HF [d, r] block W_uk[h] gives
// W_uk[h] c with w_in_out false (in = r, out = d) and W_uk[h]^T q with w_in_out
// true (in = d, out = r).
// y must not overlap x or w. Parallel over (head, block of rows), one
// single-threaded BLAS call each.
void matmul_heads(const float* x, const float* w, float* y, const HeadMatmulDims& d);

}  // namespace mlar::ops
