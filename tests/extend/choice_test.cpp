// The held-out choice search (convert/extend_choice.h): the fast walk finds the
// exhaustive minimum on unimodal axes with fewer scores, never scores a point twice,
// stops early (on the axes and along a strategy's freqfolds), and convert_extend records
// what it scored and on how many tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "convert/extend.h"
#include "convert/extend_calib.h"
#include "convert/extend_choice.h"
#include "extend/extend_fixtures.h"

namespace mlar {
namespace {

// A separable bowl: (rope - r0)^2 + 0.5 (balance - b0)^2 + 10.
std::function<double(ChoicePoint)> bowl(int64_t r0, int64_t b0, std::vector<ChoicePoint>* log) {
  return [=](ChoicePoint p) {
    log->push_back(p);
    const double dr = static_cast<double>(p.rope - r0), db = static_cast<double>(p.balance - b0);
    return dr * dr + 0.5 * db * db + 10.0;
  };
}

TEST(ChoiceSearch, FastFindsTheExhaustiveMinimumOfUnimodalAxesWithFewerScores) {
  for (int64_t r0 = 0; r0 < 5; ++r0)
    for (int64_t b0 = 0; b0 < 5; ++b0)
      for (int64_t start = 0; start < 5; ++start) {
        std::vector<ChoicePoint> fast_log, ex_log;
        const ChoiceResult f = search_choices(ChoiceMode::Fast, 5, 5, {start, 2}, bowl(r0, b0, &fast_log));
        const ChoiceResult e = search_choices(ChoiceMode::Exhaustive, 5, 5, {start, 2}, bowl(r0, b0, &ex_log));
        EXPECT_EQ(f.best, (ChoicePoint{r0, b0})) << r0 << " " << b0 << " from " << start;
        EXPECT_EQ(e.best, (ChoicePoint{r0, b0}));
        EXPECT_DOUBLE_EQ(f.best_score, 10.0);
        EXPECT_EQ(e.scored.size(), 9u);  // 5 rope positions, then 4 more balances
        EXPECT_LE(f.scored.size(), e.scored.size());
        // Each point once.
        std::set<std::pair<int64_t, int64_t>> seen;
        for (const ChoicePoint& p : fast_log) EXPECT_TRUE(seen.insert({p.rope, p.balance}).second);
        EXPECT_EQ(fast_log.size(), f.scored.size());
      }
}

TEST(ChoiceSearch, FastStopsAtTheFirstStepThatDoesNotImprove) {
  // Minimum at the start on both axes: the start and its neighbours only.
  std::vector<ChoicePoint> log;
  ChoiceResult r = search_choices(ChoiceMode::Fast, 5, 5, {2, 2}, bowl(2, 2, &log));
  EXPECT_EQ(r.scored.size(), 5u);  // (2,2) (1,2) (3,2), then (2,1) (2,3)
  // From the lower end towards a minimum 3 away: 0, 1, 2, 3, then 4 (worse) stops it.
  log.clear();
  r = search_choices(ChoiceMode::Fast, 6, 1, {0, 0}, bowl(3, 0, &log));
  EXPECT_EQ(r.best.rope, 3);
  ASSERT_EQ(log.size(), 5u);
  EXPECT_EQ(log.back().rope, 4);
  // A second, better valley beyond a hump is not seen (the unimodal assumption),
  // while exhaustive finds it.
  auto two_valleys = [](ChoicePoint p) {
    const double v[] = {3, 2, 5, 1, 4};
    return v[p.rope];
  };
  EXPECT_EQ(search_choices(ChoiceMode::Fast, 5, 1, {0, 0}, two_valleys).best.rope, 1);
  EXPECT_EQ(search_choices(ChoiceMode::Exhaustive, 5, 1, {0, 0}, two_valleys).best.rope, 3);
}

TEST(ChoiceSearch, TiesKeepTheEarlierPointAndBadGridsThrow) {
  auto flat = [](ChoicePoint) { return 1.0; };
  EXPECT_EQ(search_choices(ChoiceMode::Fast, 4, 3, {2, 1}, flat).best, (ChoicePoint{2, 1}));
  EXPECT_EQ(search_choices(ChoiceMode::Exhaustive, 4, 3, {2, 1}, flat).best, (ChoicePoint{0, 1}));
  EXPECT_THROW(search_choices(ChoiceMode::Fast, 0, 1, {0, 0}, flat), Error);
  EXPECT_THROW(search_choices(ChoiceMode::Fast, 3, 1, {3, 0}, flat), Error);
}

TEST(ChoiceSearch, RopeStartIsHalfTheBudget) {
  EXPECT_EQ(rope_start_position({8, 16, 32, 48}, 64), 2);       // 32 of 64
  EXPECT_EQ(rope_start_position({8, 16, 32, 48, 64}, 128), 4);  // 64 of 128
  EXPECT_EQ(rope_start_position({2, 4, 6, 8}, 16), 3);          // 8 of 16
  EXPECT_EQ(rope_start_position({2, 4, 6}, 10), 2);             // 5: 4 and 6 tie, the larger
  EXPECT_EQ(rope_start_position({2, 4, 6}, 0), 1);              // no budget: the middle
}

// convert_extend with the fast choice: fewer candidates than exhaustive, every one
// reported with its time, scored on the capped held-out subsample, and the source
// statistics for the choice from the capped token count.
TEST(ChoiceSearch, ConvertExtendFastScoresFewerCandidatesOnSubsamples) {
  const ModelConfig c = test::extend_config(2);
  const Model src = random_model(c, 11);
  const auto calib = test::random_ids(4000, c.vocab_size, 12);
  ExtendOptions o;
  o.calib_len = 32;
  o.kv_budget = 0.25;
  o.progress = false;
  o.choice_tokens = 256;
  o.choice_heldout_tokens = 93;  // three windows of 31
  ExtendReport fast, ex;
  convert_extend(src, o, calib, &fast);
  o.choice = ChoiceMode::Exhaustive;
  convert_extend(src, o, calib, &ex);
  const size_t n_dims = rope_dim_candidates(c, o.rope_strategy, budget_values(c, o.kv_budget)).size();
  EXPECT_EQ(ex.candidates.size(), n_dims + 4);  // every d_r, then the 4 other balances
  EXPECT_LT(fast.candidates.size(), ex.candidates.size());
  EXPECT_EQ(fast.choice_heldout_tokens, 93);
  EXPECT_EQ(fast.choice_calib_tokens, 256);
  EXPECT_EQ(ex.choice_heldout_tokens, ex.heldout_tokens);
  EXPECT_EQ(ex.choice_calib_tokens, ex.calib_tokens);
  for (const auto& cand : fast.candidates) EXPECT_GT(cand.seconds, 0.0);
  // The chosen point is the best scored one.
  double best = 1e300;
  for (const auto& cand : fast.candidates) best = std::min(best, cand.heldout_ppl);
  bool found = false;
  for (const auto& cand : fast.candidates)
    found = found || (cand.heldout_ppl == best && cand.qk_rope_dim == fast.qk_rope_dim &&
                      cand.key_balance == fast.key_balance);
  EXPECT_TRUE(found);
}

// Several rope strategies (--rope-strategy auto): every strategy's candidates are
// scored, the best scored one is converted exactly as if it had been given alone, and
// the fast balance walk scores only the variant that won at the chosen d_r.
TEST(ChoiceSearch, SeveralStrategiesConvertTheBestScoredAsIfGivenAlone) {
  const ModelConfig c = test::extend_config(2);
  const Model src = random_model(c, 31);
  const auto calib = test::random_ids(4000, c.vocab_size, 32);
  ExtendOptions o;
  o.calib_len = 32;
  o.kv_budget = 0.25;  // 8 values per layer: uniform d_r 2, 4, 6; rorope 2 (freqfold 4), 4 (2, 4)
  o.progress = false;
  o.rope_strategies = {RopeStrategy::Uniform, RopeStrategy::RoRoPE};
  o.choice = ChoiceMode::Exhaustive;
  ExtendReport ex;
  convert_extend(src, o, calib, &ex);
  std::set<RopeStrategy> seen;
  const ExtendCandidate* best = nullptr;
  for (const auto& cand : ex.candidates) {
    seen.insert(cand.rope_strategy);
    if (!best || cand.heldout_ppl < best->heldout_ppl) best = &cand;
  }
  EXPECT_EQ(seen.size(), 2u);
  ASSERT_NE(best, nullptr);
  EXPECT_EQ(ex.rope_strategy, best->rope_strategy);
  EXPECT_EQ(ex.qk_rope_dim, best->qk_rope_dim);
  EXPECT_EQ(ex.freqfold, best->freqfold);
  EXPECT_EQ(ex.key_balance, best->key_balance);
  // The same conversion with the choice given (on the statistics windows the choosing
  // run kept besides its held-out tail): identical plan and latent.
  ExtendOptions given = o;
  given.calib_tokens = ex.calib_tokens;
  given.rope_strategies.clear();
  given.rope_strategy = ex.rope_strategy;
  given.qk_rope_dim = ex.qk_rope_dim;
  given.freqfold = ex.freqfold;
  given.attn_key_balance = ex.key_balance;
  ExtendReport alone;
  convert_extend(src, given, calib, &alone);
  EXPECT_TRUE(alone.candidates.empty());
  EXPECT_EQ(alone.kept_freqs, ex.kept_freqs);
  ASSERT_EQ(alone.layer_latent_captured.size(), ex.layer_latent_captured.size());
  for (size_t l = 0; l < ex.layer_latent_captured.size(); ++l) {
    EXPECT_NEAR(alone.layer_latent_captured[l], ex.layer_latent_captured[l], 1e-12) << l;
    EXPECT_NEAR(alone.layer_rope_captured[l], ex.layer_rope_captured[l], 1e-12) << l;
  }

  // Fast: each balance other than the start (0.1) is scored once, with the variant
  // that won at the chosen d_r on the start balance.
  o.choice = ChoiceMode::Fast;
  ExtendReport fast;
  convert_extend(src, o, calib, &fast);
  std::map<double, int> per_balance;
  const ExtendCandidate* at_start = nullptr;
  for (const auto& cand : fast.candidates) {
    if (cand.qk_rope_dim != fast.qk_rope_dim) continue;
    ++per_balance[cand.key_balance];
    if (cand.key_balance == 0.1 && (!at_start || cand.heldout_ppl < at_start->heldout_ppl)) at_start = &cand;
  }
  ASSERT_NE(at_start, nullptr);
  EXPECT_GT(per_balance.size(), 1u);
  for (const auto& [b, n] : per_balance) {
    if (b == 0.1) continue;
    EXPECT_EQ(n, 1) << b;
  }
  for (const auto& cand : fast.candidates) {
    if (cand.qk_rope_dim != fast.qk_rope_dim || cand.key_balance == 0.1) continue;
    EXPECT_EQ(cand.rope_strategy, at_start->rope_strategy);
    EXPECT_EQ(cand.freqfold, at_start->freqfold);
  }

  // Fast: a strategy's freqfolds at one d_r and balance are scored in ascending order and stop at the
  // first that scores worse than the one before; what is scored is a prefix of the exhaustive folds.
  for (size_t i = 0; i + 1 < fast.candidates.size(); ++i) {
    const ExtendCandidate &a = fast.candidates[i], &b = fast.candidates[i + 1];
    if (a.rope_strategy != b.rope_strategy || a.qk_rope_dim != b.qk_rope_dim || a.key_balance != b.key_balance)
      continue;
    EXPECT_LT(a.freqfold, b.freqfold);
    if (b.heldout_ppl <= a.heldout_ppl || i + 2 >= fast.candidates.size()) continue;
    const ExtendCandidate& c2 = fast.candidates[i + 2];
    EXPECT_FALSE(c2.rope_strategy == b.rope_strategy && c2.qk_rope_dim == b.qk_rope_dim &&
                 c2.key_balance == b.key_balance)
        << "a fold scored after one that lost";
  }
  for (const auto& cand : fast.candidates) {
    if (cand.key_balance != 0.1) continue;
    bool in_exhaustive = false;
    for (const auto& e : ex.candidates)
      in_exhaustive = in_exhaustive || (e.rope_strategy == cand.rope_strategy && e.qk_rope_dim == cand.qk_rope_dim &&
                                        e.freqfold == cand.freqfold && e.key_balance == cand.key_balance);
    EXPECT_TRUE(in_exhaustive) << cand.qk_rope_dim << "/" << cand.freqfold;
  }

  // --freqfold 2 leaves rorope alone among the strategies.
  o.freqfold = 2;
  ExtendReport folded;
  convert_extend(src, o, calib, &folded);
  ASSERT_FALSE(folded.candidates.empty());
  for (const auto& cand : folded.candidates) {
    EXPECT_EQ(cand.rope_strategy, RopeStrategy::RoRoPE);
    EXPECT_EQ(cand.freqfold, 2);
  }
}

// The fold walk where a strategy has several folds to walk: heads of 32 (rorope d_r 8: folds 2, 4, 8;
// d_r 4: 2 .. 8), rorope alone, fast against exhaustive on the same statistics: the fast folds at each
// d_r are the exhaustive ones up to and including the first that loses, and both pick the same when
// the exhaustive scores are unimodal along the folds.
TEST(ChoiceSearch, FreqfoldWalkStopsAtTheFirstLoss) {
  ModelConfig c = test::extend_config(2);
  c.head_dim = 32;
  c.hidden_size = 64;
  const Model src = random_model(c, 41);
  const auto calib = test::random_ids(4000, c.vocab_size, 42);
  ExtendOptions o;
  o.calib_len = 32;
  o.kv_budget = 0.25;  // 32 values per layer
  o.progress = false;
  o.rope_strategy = RopeStrategy::RoRoPE;
  o.attn_key_balance = 0.3;
  ExtendReport fast, ex;
  convert_extend(src, o, calib, &fast);
  o.choice = ChoiceMode::Exhaustive;
  convert_extend(src, o, calib, &ex);
  std::map<int64_t, std::vector<const ExtendCandidate*>> fast_at, ex_at;  // d_r -> folds in scored order
  for (const auto& cand : fast.candidates) fast_at[cand.qk_rope_dim].push_back(&cand);
  for (const auto& cand : ex.candidates) ex_at[cand.qk_rope_dim].push_back(&cand);
  int walked = 0;
  for (const auto& [dr, folds] : fast_at) {
    const auto& all = ex_at.at(dr);
    ASSERT_LE(folds.size(), all.size());
    size_t stop = all.size();  // the exhaustive folds up to the first that loses
    for (size_t i = 1; i < all.size(); ++i)
      if (all[i]->heldout_ppl > all[i - 1]->heldout_ppl) {
        stop = i + 1;
        break;
      }
    ASSERT_EQ(folds.size(), stop) << "d_r " << dr;
    for (size_t i = 0; i < folds.size(); ++i) {
      EXPECT_EQ(folds[i]->freqfold, all[i]->freqfold);
      EXPECT_EQ(folds[i]->heldout_ppl, all[i]->heldout_ppl);
    }
    walked += all.size() > folds.size();
  }
  std::printf("[ folds ] fast %zu candidates, exhaustive %zu; %d d_r stopped early\n", fast.candidates.size(),
              ex.candidates.size(), walked);
}

// --attention-tokens: the histogram and value spread come from the first windows
// only, the second moment still from every window.
TEST(AttentionTokens, HistogramFromTheFirstWindowsOnly) {
  const ModelConfig c = test::extend_config(2);
  const Model src = random_model(c, 21);
  const auto ids = test::random_ids(400, c.vocab_size, 22);
  CalibWindows w;
  w.ids = ids;
  w.len = 20;
  StatsWanted all;
  all.attention = true;
  StatsWanted capped = all;
  capped.attention_tokens = 40;  // two windows
  CalibWindows two = w;
  two.max_tokens = 40;
  const auto a = source_pass(src, w, capped, false);
  const auto b = source_pass(src, two, all, false);
  const auto full = source_pass(src, w, all, false);
  double moved = 0;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const auto& A = a[static_cast<size_t>(l)];
    const auto& B = b[static_cast<size_t>(l)];
    const auto& F = full[static_cast<size_t>(l)];
    for (int64_t h = 0; h < c.num_heads; ++h) {
      EXPECT_DOUBLE_EQ(A.attention.value_spread(h), B.attention.value_spread(h));
      EXPECT_DOUBLE_EQ(A.attention.mean_rotation(h, 0.3).first, B.attention.mean_rotation(h, 0.3).first);
      EXPECT_DOUBLE_EQ(A.attention.mean_rotation(h, 0.3).second, B.attention.mean_rotation(h, 0.3).second);
      moved += std::abs(A.attention.value_spread(h) - F.attention.value_spread(h));
    }
    ASSERT_EQ(A.S.a.size(), F.S.a.size());
    for (size_t i = 0; i < A.S.a.size(); ++i) ASSERT_DOUBLE_EQ(A.S.a[i], F.S.a[i]);
  }
  EXPECT_GT(moved, 0.0);  // the cap did change the histogram
}

}  // namespace
}  // namespace mlar
