#include "ops/elementwise.h"

#include <algorithm>

#include "ops/parallel.h"

namespace mlar::ops {

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void scale_inplace(float* x, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void gather_rows(const float* table, const int32_t* ids, float* out, int64_t n, int64_t dim) {
  for (int64_t r = 0; r < n; ++r) std::copy_n(table + static_cast<int64_t>(ids[r]) * dim, dim, out + r * dim);
}

void copy_heads(const float* src, int64_t src_stride, int64_t src_head_stride, float* dst, int64_t dst_stride,
                int64_t dst_head_stride, int64_t n, int64_t heads, int64_t width) {
  parallel_for(n, pick_grain(n, heads * width, 1 << 16), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t h = 0; h < heads; ++h)
        std::copy_n(src + t * src_stride + h * src_head_stride, width, dst + t * dst_stride + h * dst_head_stride);
  });
}

}  // namespace mlar::ops
