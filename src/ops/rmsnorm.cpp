#include "ops/rmsnorm.h"

#include <cmath>

#include "ops/parallel.h"

namespace mlar::ops {

void rmsnorm(const float* x, const float* weight, float* y, int64_t n, int64_t dim, float eps) {
  rmsnorm_strided(x, dim, weight, y, dim, n, dim, eps);
}

void rmsnorm_strided(const float* x, int64_t x_stride, const float* weight, float* y, int64_t y_stride, int64_t n,
                     int64_t dim, float eps) {
  parallel_for(n, pick_grain(n, dim, 1 << 16), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * x_stride;
      float* yr = y + r * y_stride;
      double ss = 0.0;
      for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + static_cast<double>(eps)));
      for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * inv * weight[i];
    }
  });
}

}  // namespace mlar::ops
