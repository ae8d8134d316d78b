// compare_models: a model against itself, against a perturbed copy, and against its
// MLA conversion (the last needs the runtime's MLA attention).
#include <gtest/gtest.h>

#include "convert/repeat.h"
#include "convert_sources.h"
#include "expect_error.h"
#include "runtime/compare.h"
#include "runtime/perplexity.h"
#include "runtime/random_model.h"

namespace mlar {
namespace {

std::vector<int32_t> dev_ids(const Model& m) {
  return m.tokenizer->encode(read_utf8_file(test::dev_text_path()).substr(0, 4000));
}

TEST(Compare, ModelAgainstItself) {
  const Model& m = test::convert_source("stories-bin");
  const auto ids = dev_ids(m);
  CompareOptions o;
  o.ctx = 64;
  o.max_tokens = 200;
  o.prompt = {1};
  o.gen_tokens = 12;
  int64_t calls = 0;
  o.progress = [&](int64_t, int64_t total) {
    EXPECT_EQ(total, 200);
    ++calls;
  };
  const CompareResult r = compare_models(m, m, ids, o);
  EXPECT_EQ(r.tokens, 200);
  EXPECT_EQ(r.windows, 4);  // 63 + 63 + 63 + 11
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(r.max_abs_logit_diff, 0.0);
  EXPECT_LE(r.mean_kl, 1e-12);
  EXPECT_EQ(r.greedy_agreement, 1.0);
  EXPECT_EQ(r.ppl_a, r.ppl_b);
  EXPECT_GT(r.max_abs_logit, 1.0);
  EXPECT_EQ(r.gen_a.size(), 12u);
  EXPECT_TRUE(r.gen_identical);
  EXPECT_EQ(r.kv_a.bytes_per_token(), 5 * 2 * 32 * 4);
  // The same perplexity as the perplexity protocol.
  PerplexityOptions po;
  po.ctx = 64;
  po.max_tokens = 200;
  EXPECT_NEAR(r.ppl_a, perplexity(m, ids, po).ppl, 1e-9 * r.ppl_a);
}

TEST(Compare, PerturbedCopyDiffers) {
  const Model& m = test::convert_source("llama");
  Model p = m;
  float* wv = p.weights.layers[0].wv.ptr();  // [kv_dim, D]
  for (int64_t i = 0; i < p.weights.layers[0].wv.numel(); ++i) wv[i] *= 1.5f;
  std::vector<int32_t> ids(120);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(3 + (i * 31) % 90);
  CompareOptions o;
  o.ctx = 40;
  const CompareResult r = compare_models(m, p, ids, o);
  EXPECT_EQ(r.tokens, 120);
  EXPECT_GT(r.max_abs_logit_diff, 1e-3);
  EXPECT_GT(r.mean_kl, 0.0);
  EXPECT_GE(r.max_kl, r.mean_kl);
  EXPECT_NE(r.ppl_a, r.ppl_b);
  EXPECT_LE(r.greedy_agreement, 1.0);
  EXPECT_TRUE(r.gen_a.empty());  // no prompt, no generation
}

TEST(Compare, RefusesMismatchedVocabulariesAndContexts) {
  const Model& a = test::convert_source("stories-bin");
  const Model& b = test::convert_source("llama");
  const std::vector<int32_t> ids{5, 6, 7};
  EXPECT_HAS(test::error_of([&] { compare_models(a, b, ids, {}); }), "must share one");
  CompareOptions o;
  o.ctx = 100000;
  EXPECT_HAS(test::error_of([&] { compare_models(a, a, ids, o); }), "exceeds the maximum context");
}

TEST(Compare, ConvertedModelMatchesItsSource) {
  const Model& g = test::convert_source("stories-bin");
  const Model m = convert_repeat(g);
  CompareOptions o;
  o.ctx = 64;
  o.max_tokens = 300;
  o.prompt = {1};
  o.gen_tokens = 24;
  const CompareResult r = compare_models(g, m, dev_ids(g), o);
  EXPECT_LE(r.max_abs_logit_diff, 1e-4);
  EXPECT_LE(r.mean_kl, 1e-9);
  EXPECT_NEAR(r.ppl_b, r.ppl_a, 1e-5 * r.ppl_a);
  EXPECT_EQ(r.greedy_agreement, 1.0);
  EXPECT_TRUE(r.gen_identical);
  EXPECT_EQ(r.kv_a.bytes_per_token(), r.kv_b.bytes_per_token());
}

}  // namespace
}  // namespace mlar
