// Exactness of the extend retrofit where it can be exact (ISSUE acceptance):
//  - MQA (n_kv = 1) at full rank with the whole rope kept reproduces the source logits;
//  - any model at full rank changes nothing but the removed rope: its logits equal an
//    independent reference forward of the source with the rotation removed from every
//    key part outside the rope key (tests/extend/extend_fixtures.h).
#include <gtest/gtest.h>

#include "extend/extend_fixtures.h"

namespace mlar {
namespace {

using test::extend_config;
using test::full_rank_options;
using test::max_abs_diff;
using test::random_ids;
using test::runtime_logits;

TEST(ExtendExact, MqaFullRankWholeRopeReproducesTheSource) {
  for (bool bias : {false, true})
    for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved}) {
      const ModelConfig c = extend_config(1, layout, bias);
      const Model src = random_model(c, 11);
      const auto calib = random_ids(800, c.vocab_size, 3);
      const auto ids = random_ids(40, c.vocab_size, 5);
      const Tensor want = runtime_logits(src, ids);
      // r = 2 n_kv d (the whole [k_nope; v]) and r = d (k_nope is zero when every
      // frequency is rope: the value alone fills the latent).
      for (int64_t r : {2 * c.kv_dim(), c.kv_dim()}) {
        ExtendOptions o = full_rank_options(c, RopeStrategy::RoRoPE, c.head_dim, 1);
        o.kv_lora_rank = r;
        ExtendReport rep;
        const Model mla = convert_extend(src, o, calib, &rep);
        EXPECT_TRUE(mla.config.mla->rope_inv_freq.empty());  // the derived table of a head of d
        const double diff = max_abs_diff(runtime_logits(mla, ids), want);
        EXPECT_LE(diff, 1e-4) << "bias " << bias << " layout " << rope_layout_name(layout) << " r " << r;
      }
    }
}

// Every strategy at full rank against the reference with the non-kept rope removed.
TEST(ExtendExact, FullRankChangesNothingButTheRemovedRope) {
  struct Case {
    RopeStrategy s;
    int64_t d_r, fold;
  };
  const Case cases[] = {{RopeStrategy::RoRoPE, 8, 1},  {RopeStrategy::High, 8, 1}, {RopeStrategy::High, 4, 1},
                        {RopeStrategy::Low, 2, 1},     {RopeStrategy::Uniform, 4, 1},
                        {RopeStrategy::TwoNorm, 6, 1}, {RopeStrategy::RoRoPE, 4, 2}, {RopeStrategy::RoRoPE, 4, 4},
                        {RopeStrategy::RoRoPE, 8, 2}};
  for (int64_t n_kv : {1, 2, 4})
    for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved})
      for (RopePca pca : {RopePca::Real, RopePca::Complex}) {
        const ModelConfig c = extend_config(n_kv, layout, /*bias=*/true);
        const Model src = random_model(c, 21 + static_cast<uint64_t>(n_kv));
        const auto calib = random_ids(800, c.vocab_size, 7);
        const auto ids = random_ids(24, c.vocab_size, 9);
        for (const Case& k : cases) {
          ExtendOptions o = full_rank_options(c, k.s, k.d_r, k.fold, pca);
          ExtendReport rep;
          const Model mla = convert_extend(src, o, calib, &rep);
          const Tensor got = runtime_logits(mla, ids);
          const auto want = test::rope_removed_forward(src, rep.plans, ids);
          EXPECT_LE(max_abs_diff(got, want), 1e-4)
              << rope_strategy_name(k.s) << " d_r " << k.d_r << " freqfold " << k.fold << " n_kv " << n_kv << " "
              << rope_layout_name(layout) << " " << rope_pca_name(pca);
        }
      }
}

// The reference itself: with n_kv = 1 and every frequency kept it is the plain source.
TEST(ExtendExact, ReferenceIsTheSourceWhenNothingIsRemoved) {
  const ModelConfig c = extend_config(1, RopeLayout::Half, true);
  const Model src = random_model(c, 4);
  const auto calib = random_ids(800, c.vocab_size, 1);
  const auto ids = random_ids(20, c.vocab_size, 2);
  ExtendReport rep;
  convert_extend(src, full_rank_options(c, RopeStrategy::High, c.head_dim, 1), calib, &rep);
  const auto ref = test::rope_removed_forward(src, rep.plans, ids);
  const auto naive = test::naive_forward(src, ids);
  double m = 0;
  for (size_t t = 0; t < ref.size(); ++t)
    for (size_t i = 0; i < ref[t].size(); ++i) m = std::max(m, std::abs(ref[t][i] - naive[t][i]));
  EXPECT_LE(m, 1e-9);
}

// Removing rope is not free: a partial strategy does change the logits.
TEST(ExtendExact, PartialRopeChangesTheModel) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 8);
  const auto calib = random_ids(800, c.vocab_size, 1);
  const auto ids = random_ids(24, c.vocab_size, 2);
  const Model mla = convert_extend(src, full_rank_options(c, RopeStrategy::High, 4, 1), calib);
  EXPECT_GT(max_abs_diff(runtime_logits(mla, ids), runtime_logits(src, ids)), 1e-3);
}

}  // namespace
}  // namespace mlar
