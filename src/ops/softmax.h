// Softmax and log-sum-exp over rows.
#pragma once
#include <cstdint>

namespace mlar::ops {

// In place, row by row: x[r, :] = exp(x[r, :] - max) / sum. x: [n, cols].
// exp is ops::exp_approx (relative error ~2e-7, vectorised).
void softmax(float* x, int64_t n, int64_t cols);

// log(sum_i exp(x[i])) over x[0, n), computed in double with the max subtracted.
double log_sum_exp(const float* x, int64_t n);

}  // namespace mlar::ops
