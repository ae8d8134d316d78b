// Element-wise and per-row kernels of the CUDA backend, the counterparts of
// ops/rmsnorm.h, ops/rope.h, ops/swiglu.h, ops/linear.h (embed_rows) and
// ops/kv_attention.h (round_rows). Same semantics and layouts as the CPU ops;
// every pointer is a device pointer (ops/cuda/device.h). Kernels run on the
// default stream, in order, without synchronising.
#pragma once
#include <cstdint>

#include "ops/kv_attention.h"  // TypedRows
#include "ops/rope.h"          // RopePairs

namespace mlar::cuda {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:], rows r < n (row
// strides in floats; y may equal x). Sum of squares in double, as on the CPU.
void rmsnorm(const float* x, int64_t x_stride, const float* weight, float* y, int64_t y_stride, int64_t n,
             int64_t dim, float eps);

// As ops::rope: in place on heads of `d` values at x + t * token_stride + h * head_stride,
// pair i of token t rotated by positions[t] * inv_freq[i] (angles, sin and cos in double).
// positions: [n] int64; inv_freq: [d/2].
void rope(float* x, int64_t n, int64_t heads, int64_t d, int64_t head_stride, int64_t token_stride,
          const int64_t* positions, const float* inv_freq, ops::RopePairs pairs);

// out[i] = silu(gate[i]) * up[i], i < n (out may alias either input).
void swiglu(const float* gate, const float* up, float* out, int64_t n);
// out[i] = a[i] + b[i] (out may alias either input).
void add(const float* a, const float* b, float* out, int64_t n);
// out[r, c] = table row ids[r], column c, as float32; r < n, c < dim. ids: [n] int32.
void embed_rows(ops::TypedRows table, const int32_t* ids, float* out, int64_t n, int64_t dim);
// dst rows = src rows (f32, row stride src_stride) rounded to dst.dtype (nearest even).
void round_rows(const float* src, int64_t src_stride, int64_t rows, int64_t cols, ops::TypedRows dst);
// dst rows (f32, row stride dst_stride) = src rows widened to float32.
void widen_rows(ops::TypedRows src, int64_t rows, int64_t cols, float* dst, int64_t dst_stride);

}  // namespace mlar::cuda
