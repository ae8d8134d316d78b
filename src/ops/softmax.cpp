#include "ops/softmax.h"

#include <cmath>

#include "ops/exp.h"
#include "ops/parallel.h"

namespace mlar::ops {

void softmax(float* x, int64_t n, int64_t cols) {
  parallel_for(n, pick_grain(n, cols * 4, 1 << 16), [&](int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    float* xr = x + r * cols;
    float m = xr[0];
    for (int64_t i = 1; i < cols; ++i) m = xr[i] > m ? xr[i] : m;
    const float inv = 1.0f / exp_shift_sum(xr, cols, m);
    for (int64_t i = 0; i < cols; ++i) xr[i] *= inv;
  }
  });
}

double log_sum_exp(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - m);
  return static_cast<double>(m) + std::log(sum);
}

}  // namespace mlar::ops
