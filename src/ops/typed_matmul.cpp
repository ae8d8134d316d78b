// Placeholder scalar implementation (replaced by the dispatching kernels).
#include "ops/typed_matmul.h"

#include <vector>

#include "ops/matmul.h"
#include "util/error.h"
#include "util/half.h"

namespace mlar::ops {

void to_f32(const void* src, DType t, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  switch (t) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<const float*>(src)[i];
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h[i]);
      return;
    default:
      fail("to_f32: unsupported dtype {}", dtype_name(t));
  }
}

void from_f32(const float* src, DType t, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  switch (t) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) static_cast<float*>(dst)[i] = src[i];
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(src[i]);
      return;
    default:
      fail("from_f32: unsupported dtype {}", dtype_name(t));
  }
}

void matmul_typed(const float* x, int64_t x_stride, const void* w, DType wt, const float* bias, float* y,
                  int64_t y_stride, int64_t n, int64_t in, int64_t out) {
  if (wt == DType::F32) {
    matmul_strided(x, x_stride, static_cast<const float*>(w), bias, y, y_stride, n, in, out);
    return;
  }
  std::vector<float> wf(static_cast<size_t>(in * out));
  to_f32(w, wt, wf.data(), in * out);
  matmul_strided(x, x_stride, wf.data(), bias, y, y_stride, n, in, out);
}

void gather_rows_typed(const void* table, DType t, const int32_t* ids, float* out, int64_t n, int64_t dim) {
  const size_t es = dtype_size(t);
  for (int64_t r = 0; r < n; ++r)
    to_f32(static_cast<const uint8_t*>(table) + static_cast<size_t>(ids[r]) * static_cast<size_t>(dim) * es, t,
           out + r * dim, dim);
}

std::string cpu_level() { return "scalar"; }

}  // namespace mlar::ops
