#include "train/ops_swiglu.h"

#include <cmath>

#include "ops/parallel.h"

namespace mlar::train {

void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n) {
  ops::parallel_for(n, ops::pick_grain(n, 16, 1 << 17, 1024, 16), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gate[i], u = up[i], go = dout[i];
      const float s = 1.0f / (1.0f + std::exp(-g));
      const float silu = g * s;
      dgate[i] = go * u * s * (1.0f + g * (1.0f - s));
      dup[i] = go * silu;
    }
  });
}

}  // namespace mlar::train
