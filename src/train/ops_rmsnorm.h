// Backward of RMSNorm (the forward is ops::rmsnorm_strided):
//   y_i = x_i * w_i * inv,  inv = 1 / sqrt(mean_j x_j^2 + eps)
//   dx_j = inv * w_j * dy_j - inv^3 / dim * x_j * sum_i dy_i w_i x_i
//   dw_i += sum_rows dy_i * x_i * inv
// The backward needs only the input x (inv is recomputed, in double).
#pragma once
#include <cstdint>

namespace mlar::train {

struct RmsNormDims {
  int64_t n = 0;    // rows
  int64_t dim = 0;  // values normalised together
  int64_t x_stride = 0, y_stride = 0;  // row strides of x (and dx), of y (and dy); 0 = packed
  float eps = 1e-5f;
  int64_t xs() const { return x_stride > 0 ? x_stride : dim; }
  int64_t ys() const { return y_stride > 0 ? y_stride : dim; }
};

// y[n, dim] = rmsnorm(x[n, dim]) * w[dim] (ops::rmsnorm_strided).
void rmsnorm_forward(const float* x, const float* w, float* y, const RmsNormDims& d);

// dx [n, dim] (x_stride): overwritten, or added to when accumulate_dx; skipped when null.
// dw [dim]: added to (sums over rows in double); skipped when null.
void rmsnorm_backward(const float* x, const float* w, const float* dy, float* dx, bool accumulate_dx, float* dw,
                      const RmsNormDims& d);

}  // namespace mlar::train
