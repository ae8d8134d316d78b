// Finite-difference helpers for the gradient checks of tests/train: random inputs,
// central differences of a double-precision reference, and the comparison metric.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <random>
#include <vector>

namespace mlar::test {

using Vec = std::vector<double>;

// n floats uniform in [-scale, scale) from a seeded mt19937_64 (raw output).
inline std::vector<float> rand_floats(int64_t n, uint64_t seed, double scale = 1.0, double offset = 0.0) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(offset + scale * (2.0 * (static_cast<double>(rng() >> 11) * 0x1.0p-53) - 1.0));
  return v;
}

inline Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// d loss / d x by central differences, x in double, step h.
template <typename F>
Vec numeric_grad(Vec x, F&& loss, double h = 1e-5) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss(x);
    x[i] = x0 - h;
    const double lm = loss(x);
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

// max_i |analytic_i - ref_i| / max_i |ref_i| (the reference's scale; 1e-30 floor).
// With MLAR_GRAD_VERBOSE set, prints it (for reports).
template <typename A>
double grad_rel_err(const A& analytic, const Vec& ref) {
  double d = 0, s = 1e-30;
  for (size_t i = 0; i < ref.size(); ++i) {
    d = std::max(d, std::abs(static_cast<double>(analytic[i]) - ref[i]));
    s = std::max(s, std::abs(ref[i]));
  }
  if (std::getenv("MLAR_GRAD_VERBOSE")) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("  grad check %s.%s: max rel err %.3g over %zu values\n", info ? info->test_suite_name() : "?",
                info ? info->name() : "?", d / s, ref.size());
  }
  return d / s;
}

// sum_i r_i y_i: the scalar loss whose gradient w.r.t. y is r.
template <typename A, typename B>
double dot(const A& r, const B& y) {
  double s = 0;
  for (size_t i = 0; i < r.size(); ++i) s += static_cast<double>(r[i]) * static_cast<double>(y[i]);
  return s;
}

}  // namespace mlar::test
