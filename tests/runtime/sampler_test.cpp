// Sampler: greedy, seeded reproducibility, temperature and nucleus behaviour.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "runtime/sampler.h"
#include "util/error.h"

namespace mlar {
namespace {

TEST(Sampler, GreedyIsArgmax) {
  Sampler s;
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 2.0f, -1.0f, 1.9f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{5.0f, 5.0f, 1.0f}), 0);  // first on ties
}

TEST(Sampler, SeedReproduces) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i)) * 2.0f;
  for (float top_p : {1.0f, 0.9f}) {
    Sampler a({.temperature = 1.0f, .top_p = top_p, .seed = 1234});
    Sampler b({.temperature = 1.0f, .top_p = top_p, .seed = 1234});
    Sampler c({.temperature = 1.0f, .top_p = top_p, .seed = 99});
    std::vector<int32_t> sa, sb, sc;
    for (int i = 0; i < 200; ++i) {
      sa.push_back(a.sample(logits));
      sb.push_back(b.sample(logits));
      sc.push_back(c.sample(logits));
    }
    EXPECT_EQ(sa, sb);
    EXPECT_NE(sa, sc);
  }
}

TEST(Sampler, FrequenciesFollowSoftmax) {
  const std::vector<float> logits{0.0f, std::log(2.0f), std::log(5.0f), -30.0f};  // p = 1/8, 2/8, 5/8, ~0
  Sampler s({.temperature = 1.0f, .top_p = 1.0f, .seed = 7});
  std::map<int32_t, int> n;
  const int N = 40000;
  for (int i = 0; i < N; ++i) ++n[s.sample(logits)];
  EXPECT_NEAR(n[0] / double(N), 1.0 / 8, 0.01);
  EXPECT_NEAR(n[1] / double(N), 2.0 / 8, 0.01);
  EXPECT_NEAR(n[2] / double(N), 5.0 / 8, 0.01);
  EXPECT_EQ(n[3], 0);
}

TEST(Sampler, TemperatureSharpens) {
  const std::vector<float> logits{0.0f, 1.0f};
  Sampler cold({.temperature = 0.1f, .top_p = 1.0f, .seed = 3});
  int ones = 0;
  for (int i = 0; i < 2000; ++i) ones += cold.sample(logits);
  EXPECT_GT(ones, 1990);  // p(1) = 1 / (1 + e^-10)
}

TEST(Sampler, TopPKeepsTheNucleus) {
  const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  Sampler s({.temperature = 1.0f, .top_p = 0.75f, .seed = 11});  // nucleus {0, 1}: 0.5 + 0.3 >= 0.75
  std::map<int32_t, int> n;
  const int N = 20000;
  for (int i = 0; i < N; ++i) ++n[s.sample(logits)];
  EXPECT_EQ(n[2] + n[3], 0);
  EXPECT_NEAR(n[0] / double(N), 0.5 / 0.8, 0.015);
  Sampler tiny({.temperature = 1.0f, .top_p = 1e-6f, .seed = 11});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(tiny.sample(logits), 0);
}

TEST(Sampler, RejectsBadOptions) {
  EXPECT_THROW(Sampler({.temperature = -1.0f}), Error);
  EXPECT_THROW(Sampler({.temperature = 1.0f, .top_p = 0.0f}), Error);
  EXPECT_THROW(Sampler({.temperature = 1.0f, .top_p = 1.5f}), Error);
}

}  // namespace
}  // namespace mlar
