// Perplexity protocol: stories260K on tinystories-dev (reference 6.5005 over 79,521
// tokens at ctx 256) and agreement with the naive forward on short prefixes.
#include <gtest/gtest.h>

#include <cmath>

#include "naive_forward.h"
#include "runtime/perplexity.h"
#include "runtime/random_model.h"
#include "test_models.h"

namespace mlar {
namespace {

const std::vector<int32_t>& dev_ids() {
  static const auto ids = test::sp_encode(test::read_text(test::data_path("text/tinystories-dev.txt")));
  return ids;
}

TEST(Perplexity, Stories260KOnTinyStoriesDev) {
  const auto& ids = dev_ids();
  ASSERT_EQ(ids.size(), 79521u);
  PerplexityOptions o;
  o.ctx = 256;
  int64_t last_done = 0, calls = 0;
  o.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 79521);
    EXPECT_GT(done, last_done);
    last_done = done;
    ++calls;
  };
  const PerplexityResult r = perplexity(test::stories260k(), ids, o);
  EXPECT_EQ(r.tokens, 79521);
  EXPECT_EQ(r.windows, (79521 + 254) / 255);
  EXPECT_EQ(calls, r.windows);
  EXPECT_NEAR(r.ppl, 6.5005, 0.05);
  EXPECT_NEAR(std::exp(r.mean_nll), r.ppl, 1e-9);
  EXPECT_GT(r.tokens_per_s, 0);
  std::printf("stories260K tinystories-dev ctx 256: ppl %.4f, %lld tokens, %lld windows, %.2f s, %.0f tok/s\n", r.ppl,
              static_cast<long long>(r.tokens), static_cast<long long>(r.windows), r.seconds, r.tokens_per_s);
}

TEST(Perplexity, Stories260KMatchesNaiveOnAPrefix) {
  const auto& ids = dev_ids();
  const std::vector<int32_t> prefix(ids.begin(), ids.begin() + 100);  // windows of 63 and 37
  int64_t naive_scored = 0;
  const double ref = test::naive_perplexity(test::stories260k(), prefix, 64, &naive_scored);
  PerplexityOptions o;
  o.ctx = 64;
  o.max_tokens = 100;
  const PerplexityResult r = perplexity(test::stories260k(), ids, o);
  EXPECT_EQ(r.tokens, 100);
  EXPECT_EQ(naive_scored, 100);
  EXPECT_EQ(r.windows, 2);
  EXPECT_NEAR(r.ppl, ref, 1e-4 * ref);
}

TEST(Perplexity, BatchedWindowsMatchNaive) {
  ModelConfig c = test::small_config(RopeLayout::Interleaved);
  c.attention_bias = true;
  const Model m = random_model(c, 21);
  std::vector<int32_t> ids(50);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 37 + 5) % c.vocab_size);
  const double ref = test::naive_perplexity(m, ids, 20);
  for (int64_t batch : {1, 7, 512}) {
    PerplexityOptions o;
    o.ctx = 20;
    o.batch = batch;
    const PerplexityResult r = perplexity(m, ids, o);
    EXPECT_EQ(r.tokens, 50);
    EXPECT_EQ(r.windows, 3);  // 19 + 19 + 12
    EXPECT_NEAR(r.ppl, ref, 1e-4 * ref) << "batch " << batch;
  }
}

}  // namespace
}  // namespace mlar
