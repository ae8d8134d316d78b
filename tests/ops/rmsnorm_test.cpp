#include "ops/rmsnorm.h"

#include <gtest/gtest.h>

#include "scalar_reference.h"

namespace mlar {
namespace {

TEST(RmsNorm, MatchesScalarAndWorksInPlace) {
  const int64_t n = 7, dim = 96;
  const float eps = 1e-5f;
  const auto x = test::random_floats(n * dim, 1, -3, 3), w = test::random_floats(dim, 2, 0.5f, 1.5f);
  std::vector<double> ref(x.size());
  for (int64_t r = 0; r < n; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1 / std::sqrt(ss / dim + eps);
    for (int64_t i = 0; i < dim; ++i) ref[r * dim + i] = x[r * dim + i] * inv * w[i];
  }
  std::vector<float> y(x.size());
  ops::rmsnorm(x.data(), w.data(), y.data(), n, dim, eps);
  EXPECT_LE(test::rel_diff(y, ref), 1e-6);
  auto z = x;
  ops::rmsnorm(z.data(), w.data(), z.data(), n, dim, eps);
  EXPECT_EQ(z, y);
}

TEST(RmsNorm, ZeroRowStaysFinite) {
  std::vector<float> x(8, 0.0f), w(8, 1.0f), y(8);
  ops::rmsnorm(x.data(), w.data(), y.data(), 1, 8, 1e-6f);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace mlar
