// Index of the largest value.
#pragma once
#include <cstdint>

namespace mlar::ops {

// The first index of the maximum of x[0, n) (n > 0). NaNs are never chosen over a number.
int64_t argmax(const float* x, int64_t n);

}  // namespace mlar::ops
