// exp for softmax, written so that loops over it vectorise (std::exp calls do not
// without -ffast-math). Range reduction x = n ln2 + r, |r| <= ln2/2, then a degree-7
// Taylor polynomial (truncation error < 6e-9 relative) and 2^n built in the exponent
// bits. Relative error about 2e-7 for x in [-87, 88]. Branch-free: inputs are
// clamped to [-87.3, 88], so exp(-inf) gives ~1e-38 rather than 0 (harmless in a
// softmax, where the largest term is 1).
#pragma once
#include <algorithm>
#include <bit>
#include <cstdint>

namespace mlar::ops {

inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.3f), 88.0f);
  // n = round(x / ln2) via the 1.5 * 2^23 trick (round to nearest in float adds).
  constexpr float kShift = 12582912.0f;
  const float t = x * 1.44269504088896341f + kShift;
  const float fn = t - kShift;
  const int32_t n = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kShift);
  // r = x - n ln2, with ln2 split in two so n * ln2_hi is exact.
  const float r = (x - fn * 0.693145751953125f) - fn * 1.428606765330187e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * std::bit_cast<float>((n + 127) << 23);
}

// x[i] = exp_approx(x[i] - shift) for i in [0, n); returns the sum of the results.
// Out of line in exp.cpp, which is compiled with -fno-trapping-math so the loop
// vectorises (with FP traps assumed, GCC will not turn the clamps into selects).
float exp_shift_sum(float* x, int64_t n, float shift);

}  // namespace mlar::ops
