#include "ops/softmax.h"

#include <gtest/gtest.h>

#include <limits>

#include "ops/exp.h"
#include "scalar_reference.h"

namespace mlar {
namespace {

TEST(Softmax, MatchesScalarRowByRow) {
  const int64_t n = 4, cols = 33;
  auto x = test::random_floats(n * cols, 5, -10, 10);
  x[3] = 500.0f;  // large values stay finite (max subtracted)
  std::vector<double> ref(x.size());
  for (int64_t r = 0; r < n; ++r) {
    double m = -1e300, z = 0;
    for (int64_t i = 0; i < cols; ++i) m = std::max(m, double(x[r * cols + i]));
    for (int64_t i = 0; i < cols; ++i) z += std::exp(x[r * cols + i] - m);
    for (int64_t i = 0; i < cols; ++i) ref[r * cols + i] = std::exp(x[r * cols + i] - m) / z;
  }
  ops::softmax(x.data(), n, cols);
  EXPECT_LE(test::rel_diff(x, ref), 1e-6);
  for (int64_t r = 0; r < n; ++r) {
    double s = 0;
    for (int64_t i = 0; i < cols; ++i) s += x[r * cols + i];
    EXPECT_NEAR(s, 1.0, 1e-6);
  }
}

TEST(LogSumExp, MatchesScalar) {
  const auto x = test::random_floats(1000, 6, -20, 20);
  double m = -1e300, z = 0;
  for (float v : x) m = std::max(m, double(v));
  for (float v : x) z += std::exp(v - m);
  EXPECT_NEAR(ops::log_sum_exp(x.data(), 1000), m + std::log(z), 1e-12);
  const std::vector<float> big{1000.0f, 1000.0f};
  EXPECT_NEAR(ops::log_sum_exp(big.data(), 2), 1000.0 + std::log(2.0), 1e-9);
}

TEST(ExpApprox, RelativeErrorAndLimits) {
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f + 175.0f * float(i) / 200000.0f;
    const double ref = std::exp(double(x));
    worst = std::max(worst, std::abs(ops::exp_approx(x) - ref) / ref);
  }
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(ops::exp_approx(0.0f), 1.0f);
  EXPECT_LT(ops::exp_approx(-100.0f), 1e-37f);
  EXPECT_GE(ops::exp_approx(-100.0f), 0.0f);
  EXPECT_LT(ops::exp_approx(-std::numeric_limits<float>::infinity()), 1e-37f);
  EXPECT_TRUE(std::isfinite(ops::exp_approx(1000.0f)));
  std::vector<float> v{0.0f, -1.0f, -2.0f};
  const float sum = ops::exp_shift_sum(v.data(), 3, 0.0f);
  EXPECT_NEAR(sum, 1.0 + std::exp(-1.0) + std::exp(-2.0), 1e-6);
  EXPECT_NEAR(v[1], std::exp(-1.0), 1e-7);
}

}  // namespace
}  // namespace mlar
