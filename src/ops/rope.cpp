#include "ops/rope.h"

#include <cmath>
#include <vector>

#include "ops/parallel.h"

namespace mlar::ops {

void rope(float* x, int64_t n, int64_t heads, int64_t d, int64_t head_stride, int64_t token_stride,
          const int64_t* positions, const float* inv_freq, RopePairs pairs) {
  const int64_t half = d / 2;
  // Pair i is (i*a, i*a + b): half -> a = 1, b = d/2; interleaved -> a = 2, b = 1.
  const int64_t a = pairs == RopePairs::Half ? 1 : 2;
  const int64_t b = pairs == RopePairs::Half ? half : 1;
  parallel_for(n, pick_grain(n, heads * d * 2, 1 << 16), [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> cs;  // [cos | sin] for one position
    cs.resize(static_cast<size_t>(2 * half));
    for (int64_t t = t0; t < t1; ++t) {
      const double p = static_cast<double>(positions[t]);
      for (int64_t i = 0; i < half; ++i) {
        const double ang = p * static_cast<double>(inv_freq[i]);
        cs[i] = static_cast<float>(std::cos(ang));
        cs[half + i] = static_cast<float>(std::sin(ang));
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* xh = x + t * token_stride + h * head_stride;
        for (int64_t i = 0; i < half; ++i) {
          const float c = cs[i], s = cs[half + i];
          const float x0 = xh[i * a], x1 = xh[i * a + b];
          xh[i * a] = x0 * c - x1 * s;
          xh[i * a + b] = x0 * s + x1 * c;
        }
      }
    }
  });
}

}  // namespace mlar::ops
