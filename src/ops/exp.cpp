#include "ops/exp.h"

namespace mlar::ops {

float exp_shift_sum(float* x, int64_t n, float shift) {
  for (int64_t i = 0; i < n; ++i) x[i] = exp_approx(x[i] - shift);
  float s[4] = {0, 0, 0, 0};  // four partial sums, so the adds vectorise too
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) s[k] += x[i + k];
  for (; i < n; ++i) s[0] += x[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

}  // namespace mlar::ops
