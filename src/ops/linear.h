// Projections by weights kept as TypedTensor (HF [out, in], F32 | BF16 | F16 storage,
// a memory-mapped view or owned): the form the runtime calls. Shapes come from the
// weight; the kernel is ops::matmul_typed (f32 activations and accumulation).
#pragma once
#include <cstdint>

#include "tensor/typed_tensor.h"

namespace mlar::ops {

// y[n, out] = x[n, in] W^T (+ b), W: [out, in]; b: [out] or empty (any float dtype).
// Row t of x at x + t * x_stride, of y at y + t * y_stride.
void linear(const float* x, int64_t x_stride, const TypedTensor& w, const TypedTensor& b, float* y, int64_t y_stride,
            int64_t n);
inline void linear(const float* x, const TypedTensor& w, const TypedTensor& b, float* y, int64_t n) {
  linear(x, w.ndim() == 2 ? w.dim(1) : 0, w, b, y, w.ndim() == 2 ? w.dim(0) : 0, n);
}
inline void linear(const float* x, const TypedTensor& w, float* y, int64_t n) { linear(x, w, TypedTensor{}, y, n); }

// out[r, :] = table[ids[r], :] as float32; table: [rows, dim] of any float dtype.
void embed_rows(const TypedTensor& table, const int32_t* ids, float* out, int64_t n);

}  // namespace mlar::ops
