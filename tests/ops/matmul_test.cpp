#include "ops/matmul.h"

#include <gtest/gtest.h>
#include <omp.h>

#include "ops/threads.h"
#include "scalar_reference.h"

namespace mlar {
namespace {

std::vector<double> scalar_matmul(const std::vector<float>& x, const std::vector<float>& w, const float* bias, int64_t n,
                                  int64_t in, int64_t out) {
  std::vector<double> y(static_cast<size_t>(n * out));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += double(x[r * in + i]) * w[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

struct Shape3 {
  int64_t n, in, out;
};

class MatmulShapes : public ::testing::TestWithParam<Shape3> {};

TEST_P(MatmulShapes, MatchesScalar) {
  const auto [n, in, out] = GetParam();
  const auto x = test::random_floats(n * in, 1), w = test::random_floats(out * in, 2), b = test::random_floats(out, 3);
  for (bool with_bias : {false, true}) {
    std::vector<float> y(static_cast<size_t>(n * out), -7.0f);
    ops::matmul(x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), n, in, out);
    EXPECT_LE(test::rel_diff(y, scalar_matmul(x, w, with_bias ? b.data() : nullptr, n, in, out)), 1e-5)
        << n << "x" << in << "x" << out << " bias " << with_bias;
  }
}

// Decode (n = 1, gemv), tiny (serial), wide (column split), tall and narrow (row split).
INSTANTIATE_TEST_SUITE_P(Shapes, MatmulShapes,
                         ::testing::Values(Shape3{1, 64, 64}, Shape3{1, 1024, 1000}, Shape3{3, 5, 7},
                                           Shape3{17, 256, 1030}, Shape3{600, 512, 40}, Shape3{64, 300, 513}));

TEST(Matmul, SameResultWithOneOrTwoThreads) {
  const int64_t n = 33, in = 512, out = 777;
  const auto x = test::random_floats(n * in, 4), w = test::random_floats(out * in, 5);
  std::vector<float> y1(static_cast<size_t>(n * out)), y2(y1.size());
  const int saved = ops::cpu_threads();
  ops::set_cpu_threads(1);
  ops::matmul(x.data(), w.data(), nullptr, y1.data(), n, in, out);
  ops::set_cpu_threads(2);
  ops::matmul(x.data(), w.data(), nullptr, y2.data(), n, in, out);
  ops::set_cpu_threads(saved);
  EXPECT_LE(test::rel_diff(y2, y1), 1e-6);
}

}  // namespace
}  // namespace mlar
