#include "ops/swiglu.h"

#include <cmath>

#include "ops/parallel.h"

namespace mlar::ops {

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  parallel_for(n, pick_grain(n, 8, 1 << 17, 1024, 16), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

}  // namespace mlar::ops
