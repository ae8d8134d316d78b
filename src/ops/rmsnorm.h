// RMSNorm over the last dimension.
#pragma once
#include <cstdint>

namespace mlar::ops {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:] for r in [0, n).
// x, y: [n, dim] (y may equal x); weight: [dim]. Sum of squares in double.
void rmsnorm(const float* x, const float* weight, float* y, int64_t n, int64_t dim, float eps);

}  // namespace mlar::ops
