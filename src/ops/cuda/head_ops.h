// Per-head views on the device: the counterparts of ops::matmul_heads
// (ops/head_matmul.h, same HeadMatmulDims) and ops::copy_heads. Weights are f32
// device matrices (MLA's per-head up-projections are small; runtime/cuda widens them
// once at upload).
#pragma once
#include <cstdint>

#include "ops/head_matmul.h"  // HeadMatmulDims

namespace mlar::cuda {

// For every head h and row t: y_h(t) = op(W_h) x_h(t), as ops::matmul_heads.
void matmul_heads(const float* x, const float* w, float* y, const ops::HeadMatmulDims& d);
// As ops::copy_heads: `width` floats of every (token, head) view.
void copy_heads(const float* src, int64_t src_stride, int64_t src_head_stride, float* dst, int64_t dst_stride,
                int64_t dst_head_stride, int64_t n, int64_t heads, int64_t width);

}  // namespace mlar::cuda
