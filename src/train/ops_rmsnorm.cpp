#include "train/ops_rmsnorm.h"

#include <cmath>
#include <vector>

#include "ops/parallel.h"
#include "ops/rmsnorm.h"

namespace mlar::train {

void rmsnorm_forward(const float* x, const float* w, float* y, const RmsNormDims& d) {
  ops::rmsnorm_strided(x, d.xs(), w, y, d.ys(), d.n, d.dim, d.eps);
}

void rmsnorm_backward(const float* x, const float* w, const float* dy, float* dx, bool accumulate_dx, float* dw,
                      const RmsNormDims& d) {
  if (d.n <= 0 || d.dim <= 0) return;
  const int64_t xs = d.xs(), ys = d.ys(), dim = d.dim;
  std::vector<double> inv(static_cast<size_t>(d.n));  // [n] 1 / rms of each row
  ops::parallel_for(d.n, ops::pick_grain(d.n, 4 * dim, 1 << 15), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * xs;
      const float* gr = dy + r * ys;
      double ss = 0, dot = 0;  // sum x^2, sum dy w x
      for (int64_t i = 0; i < dim; ++i) {
        ss += static_cast<double>(xr[i]) * xr[i];
        dot += static_cast<double>(gr[i]) * w[i] * xr[i];
      }
      const double iv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + static_cast<double>(d.eps));
      inv[static_cast<size_t>(r)] = iv;
      if (!dx) continue;
      const double c = iv * iv * iv * dot / static_cast<double>(dim);
      float* out = dx + r * xs;
      for (int64_t i = 0; i < dim; ++i) {
        const float g = static_cast<float>(iv * w[i] * gr[i] - c * xr[i]);
        out[i] = accumulate_dx ? out[i] + g : g;
      }
    }
  });
  if (!dw) return;
  ops::parallel_for(dim, ops::pick_grain(dim, d.n, 1 << 15, 8), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double s = 0;
      for (int64_t r = 0; r < d.n; ++r) s += static_cast<double>(dy[r * ys + i]) * x[r * xs + i] * inv[static_cast<size_t>(r)];
      dw[i] += static_cast<float>(s);
    }
  });
}

}  // namespace mlar::train
