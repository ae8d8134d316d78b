#include "ops/elementwise.h"

#include <gtest/gtest.h>

#include <limits>

#include "ops/argmax.h"
#include "scalar_reference.h"

namespace mlar {
namespace {

TEST(Elementwise, AddScaleGather) {
  auto y = test::random_floats(50, 1);
  const auto x = test::random_floats(50, 2);
  auto ref = y;
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = (ref[i] + x[i]) * 0.5f;
  ops::add_inplace(y.data(), x.data(), 50);
  ops::scale_inplace(y.data(), 0.5f, 50);
  EXPECT_EQ(y, ref);

  const auto table = test::random_floats(6 * 4, 3);
  const std::vector<int32_t> ids{5, 0, 5, 2};
  std::vector<float> out(4 * 4);
  ops::gather_rows(table.data(), ids.data(), out.data(), 4, 4);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(out[r * 4 + c], table[ids[r] * 4 + c]);
}

TEST(Argmax, FirstMaximumAndNaNs) {
  const std::vector<float> a{1, 3, 2, 3};
  EXPECT_EQ(ops::argmax(a.data(), 4), 1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> b{nan, -5, 7, nan};
  EXPECT_EQ(ops::argmax(b.data(), 4), 2);
  const std::vector<float> c{-1};
  EXPECT_EQ(ops::argmax(c.data(), 1), 0);
}

}  // namespace
}  // namespace mlar
