#include "train/ops_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/parallel.h"

namespace mlar::train {
namespace {

// Per-block partial sums added in block order, so the total does not depend on
// which thread ran which block.
template <typename Fn>
double blocked_sum(int64_t n, int64_t grain, Fn fn) {
  const int64_t blocks = (n + grain - 1) / grain;
  std::vector<double> part(static_cast<size_t>(blocks), 0.0);
  ops::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      part[static_cast<size_t>(b)] = fn(b * grain, std::min(n, (b + 1) * grain));
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

// log sum exp of row[0, V) and its max, in double.
double row_lse(const float* row, int64_t V) {
  float mx = row[0];
  for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
  double z = 0;
  for (int64_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(row[v]) - mx);
  return mx + std::log(z);
}

}  // namespace

double cross_entropy(const float* logits, const int32_t* targets, int64_t n, int64_t V, float* dlogits,
                     double grad_scale) {
  if (n <= 0) return 0;
  return blocked_sum(n, 16, [&](int64_t r0, int64_t r1) {
    double s = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = logits + r * V;
      float* g = dlogits ? dlogits + r * V : nullptr;
      const int32_t tgt = targets[r];
      if (tgt < 0) {
        if (g) std::fill_n(g, V, 0.0f);
        continue;
      }
      const double lse = row_lse(row, V);
      s += lse - row[tgt];
      if (g) {
        for (int64_t v = 0; v < V; ++v) g[v] = static_cast<float>(grad_scale * std::exp(row[v] - lse));
        g[tgt] = static_cast<float>(grad_scale * (std::exp(row[tgt] - lse) - 1.0));
      }
    }
    return s;
  });
}

double kl_divergence(const float* teacher, const float* student, const int32_t* mask, int64_t n, int64_t V,
                     float* dlogits, double grad_scale) {
  if (n <= 0) return 0;
  return blocked_sum(n, 16, [&](int64_t r0, int64_t r1) {
    double s = 0;
    for (int64_t r = r0; r < r1; ++r) {
      if (mask && mask[r] < 0) continue;
      const float* tr = teacher + r * V;
      const float* sr = student + r * V;
      const double lt = row_lse(tr, V), ls = row_lse(sr, V);
      float* g = dlogits ? dlogits + r * V : nullptr;
      for (int64_t v = 0; v < V; ++v) {
        const double log_pt = tr[v] - lt, log_ps = sr[v] - ls;
        const double pt = std::exp(log_pt);
        s += pt * (log_pt - log_ps);
        if (g) g[v] += static_cast<float>(grad_scale * (std::exp(log_ps) - pt));
      }
    }
    return s;
  });
}

double squared_error(const float* y, const float* target, int64_t n, float* dy, double grad_scale) {
  if (n <= 0) return 0;
  return blocked_sum(n, 4096, [&](int64_t i0, int64_t i1) {
    double s = 0;
    for (int64_t i = i0; i < i1; ++i) {
      const double e = static_cast<double>(y[i]) - target[i];
      s += e * e;
      if (dy) dy[i] = static_cast<float>(grad_scale * 2.0 * e);
    }
    return s;
  });
}

double sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0;
  return blocked_sum(n, 4096, [&](int64_t i0, int64_t i1) {
    double s = 0;
    for (int64_t i = i0; i < i1; ++i) s += static_cast<double>(x[i]) * x[i];
    return s;
  });
}

}  // namespace mlar::train
