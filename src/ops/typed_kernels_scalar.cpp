// The portable level of ops/typed_kernels.h: one element at a time through util/half.h.
#include <cstring>

#include "ops/typed_kernels.h"
#include "util/half.h"

namespace mlar::ops::detail {
namespace {

struct LoadF32 {
  static float at(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
};
struct LoadBF16 {
  static float at(const void* p, int64_t i) { return bf16_to_f32(static_cast<const uint16_t*>(p)[i]); }
};
struct LoadF16 {
  static float at(const void* p, int64_t i) { return f16_to_f32(static_cast<const uint16_t*>(p)[i]); }
};

template <class L, size_t Size>
void dot_rows_t(const void* w, int64_t in, const float* x, int64_t xs, int nx, int64_t r0, int64_t r1, float* y,
                int64_t ys) {
  for (int64_t r = r0; r < r1; ++r) {
    const void* row = static_cast<const char*>(w) + r * in * static_cast<int64_t>(Size);
    float acc[kMaxDotRows] = {};
    for (int64_t i = 0; i < in; ++i) {
      const float wi = L::at(row, i);
      for (int t = 0; t < nx; ++t) acc[t] += x[t * xs + i] * wi;
    }
    for (int t = 0; t < nx; ++t) y[t * ys + r] = acc[t];
  }
}

void dot_rows(const void* w, DType wt, int64_t in, const float* x, int64_t xs, int nx, int64_t r0, int64_t r1,
              float* y, int64_t ys) {
  switch (wt) {
    case DType::BF16:
      return dot_rows_t<LoadBF16, 2>(w, in, x, xs, nx, r0, r1, y, ys);
    case DType::F16:
      return dot_rows_t<LoadF16, 2>(w, in, x, xs, nx, r0, r1, y, ys);
    default:
      return dot_rows_t<LoadF32, 4>(w, in, x, xs, nx, r0, r1, y, ys);
  }
}

void widen(const void* src, DType t, float* dst, int64_t n) {
  const auto* s = static_cast<const uint16_t*>(src);
  if (t == DType::BF16)
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
  else
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
}

void narrow(const float* src, DType t, void* dst, int64_t n) {
  auto* d = static_cast<uint16_t*>(dst);
  if (t == DType::BF16)
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
  else
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
}

}  // namespace

const TypedKernels& scalar_kernels() {
  static const TypedKernels k{dot_rows, widen, narrow};
  return k;
}

}  // namespace mlar::ops::detail
