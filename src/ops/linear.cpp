#include "ops/linear.h"

#include "ops/typed_matmul.h"
#include "util/error.h"

namespace mlar::ops {

void linear(const float* x, int64_t x_stride, const TypedTensor& w, const TypedTensor& b, float* y, int64_t y_stride,
            int64_t n) {
  if (w.ndim() != 2) fail("linear: weight of shape {} is not a matrix", shape_str(w.shape));
  const int64_t out = w.dim(0), in = w.dim(1);
  const float* bias = nullptr;
  Tensor bias32;  // [out] when the bias is not stored as aligned F32
  if (!b.empty()) {
    if (b.numel() != out) fail("linear: bias of shape {} for {} outputs", shape_str(b.shape), out);
    bias = f32_or_convert(b, bias32);
  }
  matmul_typed(x, x_stride, w.data(), w.dtype, bias, y, y_stride, n, in, out);
}

void embed_rows(const TypedTensor& table, const int32_t* ids, float* out, int64_t n) {
  if (table.ndim() != 2) fail("embedding of shape {} is not a matrix", shape_str(table.shape));
  gather_rows_typed(table.data(), table.dtype, ids, out, n, table.dim(1));
}

}  // namespace mlar::ops
