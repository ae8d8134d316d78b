#include "ops/swiglu.h"

#include <gtest/gtest.h>

#include "scalar_reference.h"

namespace mlar {
namespace {

TEST(SwiGlu, MatchesScalarAndWorksInPlace) {
  const int64_t n = 301;
  const auto g = test::random_floats(n, 1, -8, 8), u = test::random_floats(n, 2, -2, 2);
  std::vector<double> ref(n);
  for (int64_t i = 0; i < n; ++i) ref[i] = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
  std::vector<float> y(n);
  ops::swiglu(g.data(), u.data(), y.data(), n);
  EXPECT_LE(test::rel_diff(y, ref), 1e-6);
  auto in_place = g;
  ops::swiglu(in_place.data(), u.data(), in_place.data(), n);
  EXPECT_EQ(in_place, y);
}

}  // namespace
}  // namespace mlar
