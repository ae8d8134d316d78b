// RMSNorm over the last dimension.
#pragma once
#include <cstdint>

namespace mlar::ops {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:] for r in [0, n).
// x, y: [n, dim] (y may equal x); weight: [dim]. Sum of squares in double.
void rmsnorm(const float* x, const float* weight, float* y, int64_t n, int64_t dim, float eps);

// The same on row-strided views (row r of x at x + r * x_stride, of y at
// y + r * y_stride), e.g. the latent part of [latent | rope key] cache rows.
void rmsnorm_strided(const float* x, int64_t x_stride, const float* weight, float* y, int64_t y_stride, int64_t n,
                     int64_t dim, float eps);

}  // namespace mlar::ops
