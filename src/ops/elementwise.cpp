#include "ops/elementwise.h"

#include <algorithm>

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

}  // namespace mlar::ops
