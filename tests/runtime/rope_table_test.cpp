// RoPE inverse frequencies (default, linear, llama3) against the reference formula.
#include <gtest/gtest.h>

#include <cmath>

#include "naive_forward.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {
namespace {

ModelConfig llama31() {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position = 8192;
  return c;
}

void expect_matches_reference(const ModelConfig& c) {
  const auto got = rope_inv_freq(c);
  const auto ref = test::naive_inv_freq(c);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-7 * ref[i]) << "i=" << i;
}

TEST(RopeTable, DefaultIsThetaPower) {
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  const auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.1f);
  EXPECT_FLOAT_EQ(f[2], 0.01f);
  EXPECT_FLOAT_EQ(f[3], 0.001f);
  expect_matches_reference(c);
}

TEST(RopeTable, LinearDividesByFactor) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 4.0;
  const auto f = rope_inv_freq(c);
  ModelConfig plain = c;
  plain.rope_scaling = {};
  const auto p = rope_inv_freq(plain);
  for (size_t i = 0; i < f.size(); ++i) EXPECT_FLOAT_EQ(f[i], p[i] / 4.0f);
  expect_matches_reference(c);
}

TEST(RopeTable, Llama3HasThreeBands) {
  const ModelConfig c = llama31();
  expect_matches_reference(c);
  const auto f = rope_inv_freq(c);
  ModelConfig plain = c;
  plain.rope_scaling = {};
  const auto p = rope_inv_freq(plain);
  int high = 0, low = 0, medium = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const double wavelen = 2 * M_PI / p[i];
    if (wavelen < 8192.0 / 4.0) {
      EXPECT_FLOAT_EQ(f[i], p[i]);  // high frequency: unchanged
      ++high;
    } else if (wavelen > 8192.0) {
      EXPECT_FLOAT_EQ(f[i], p[i] / 8.0f);  // low frequency: divided by factor
      ++low;
    } else {
      EXPECT_LT(f[i], p[i]);  // medium: strictly between
      EXPECT_GT(f[i], p[i] / 8.0f);
      const double s = (8192.0 / wavelen - 1.0) / 3.0;
      EXPECT_NEAR(f[i], (1 - s) * p[i] / 8.0 + s * p[i], 1e-6 * p[i]);
      ++medium;
    }
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(medium, 0);
  // Monotone: scaled frequencies still decrease with i.
  for (size_t i = 1; i < f.size(); ++i) EXPECT_LT(f[i], f[i - 1]);
}

TEST(RopeTable, RejectsOddDimension) {
  EXPECT_THROW(rope_inv_freq(10000.0, 7, RopeScaling{}), Error);
}

}  // namespace
}  // namespace mlar
