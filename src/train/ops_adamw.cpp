#include "train/ops_adamw.h"

#include <cmath>

#include "ops/parallel.h"

namespace mlar::train {

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWHyper& h) {
  const double c1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double c2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  ops::parallel_for(n, ops::pick_grain(n, 16, 1 << 16, 1024), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double gi = g[i];
      const double mi = h.beta1 * m[i] + (1.0 - h.beta1) * gi;
      const double vi = h.beta2 * v[i] + (1.0 - h.beta2) * gi * gi;
      m[i] = static_cast<float>(mi);
      v[i] = static_cast<float>(vi);
      const double upd = (mi / c1) / (std::sqrt(vi / c2) + h.eps) + h.weight_decay * p[i];
      p[i] = static_cast<float>(p[i] - h.lr * upd);
    }
  });
}

void scale_buffer(float* x, float s, int64_t n) {
  ops::parallel_for(n, ops::pick_grain(n, 1, 1 << 16, 1024), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] *= s;
  });
}

}  // namespace mlar::train
