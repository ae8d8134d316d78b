// AdamW against the update written out by hand, global-norm clipping, the learning-
// rate schedule, and the seeded data order of TokenBatcher.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <set>

#include "common/typed_values.h"
#include "train/adamw.h"
#include "train/grad_check.h"
#include "train/token_batcher.h"
#include "util/error.h"

namespace mlar::test {
namespace {

TEST(AdamW, MatchesTheUpdateByHand) {
  TypedTensor w = Tensor({3, 4}, rand_floats(12, 1)), b = Tensor({4}, rand_floats(4, 2));
  TypedTensor gw = Tensor({3, 4}), gb = Tensor({4});
  std::vector<train::Param> params = {{"w", &w, &gw, true}, {"b", &b, &gb, false}};
  train::AdamWOptions o;
  o.beta1 = 0.8;
  o.beta2 = 0.9;
  o.eps = 1e-6;
  o.weight_decay = 0.1;
  train::AdamW opt(params, o);
  // The same in double: p -= lr (mhat / (sqrt(vhat) + eps) + wd p), wd only on w.
  Vec pw = to_double(f32_values(w)), pb = to_double(f32_values(b)), mw(12, 0), vw(12, 0), mb(4, 0), vb(4, 0);
  for (int t = 1; t <= 3; ++t) {
    const std::vector<float> new_gw = rand_floats(12, 10 + t), new_gb = rand_floats(4, 20 + t);
    std::copy(new_gw.begin(), new_gw.end(), gw.ptr());
    std::copy(new_gb.begin(), new_gb.end(), gb.ptr());
    const double lr = 0.01 * t;
    opt.step(lr);
    auto upd = [&](Vec& p, Vec& m, Vec& v, const std::vector<float>& g, double wd) {
      for (size_t i = 0; i < p.size(); ++i) {
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i];
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * double(g[i]) * g[i];
        const double mh = m[i] / (1 - std::pow(o.beta1, t)), vh = v[i] / (1 - std::pow(o.beta2, t));
        p[i] -= lr * (mh / (std::sqrt(vh) + o.eps) + wd * p[i]);
      }
    };
    upd(pw, mw, vw, f32_values(gw), o.weight_decay);
    upd(pb, mb, vb, f32_values(gb), 0.0);
  }
  EXPECT_EQ(opt.steps(), 3);
  EXPECT_LT(grad_rel_err(f32_values(w), pw), 1e-6);
  EXPECT_LT(grad_rel_err(f32_values(b), pb), 1e-6);
  EXPECT_LT(grad_rel_err(opt.first_moments()[0].data, mw), 1e-6);
  EXPECT_LT(grad_rel_err(opt.second_moments()[1].data, vb), 1e-6);
}

TEST(AdamW, ClipGlobalNorm) {
  TypedTensor a = Tensor({2}, {3.0f, 0.0f}), b = Tensor({1}, {4.0f});
  TypedTensor ga = Tensor({2}, {3.0f, 0.0f}), gb = Tensor({1}, {4.0f});
  std::vector<train::Param> p = {{"a", &a, &ga, false}, {"b", &b, &gb, false}};
  EXPECT_DOUBLE_EQ(train::clip_grad_norm(p, 0.0), 5.0);  // 0: report only
  EXPECT_EQ(ga.ptr()[0], 3.0f);
  EXPECT_DOUBLE_EQ(train::clip_grad_norm(p, 10.0), 5.0);  // below the limit: unchanged
  EXPECT_EQ(gb.ptr()[0], 4.0f);
  EXPECT_DOUBLE_EQ(train::clip_grad_norm(p, 1.0), 5.0);
  EXPECT_NEAR(ga.ptr()[0], 0.6f, 1e-7);
  EXPECT_NEAR(gb.ptr()[0], 0.8f, 1e-7);
}

TEST(LrSchedule, WarmupThenCosine) {
  const train::LrSchedule s{1e-3, 0.1, 4, 24};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25e-3);
  EXPECT_DOUBLE_EQ(s.at(3), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(4), 1e-3);  // cosine starts at the peak
  EXPECT_NEAR(s.at(23), 1e-4, 1e-15);  // and ends at peak * min_ratio
  EXPECT_NEAR(s.at(13), 1e-4 + 0.45e-3 * (1 + std::cos(std::numbers::pi * 9 / 19.0)), 1e-15);
  for (int64_t i = 4; i < 23; ++i) EXPECT_GE(s.at(i), s.at(i + 1));
  const train::LrSchedule flat{2e-3, 0.1, 0, 1};
  EXPECT_DOUBLE_EQ(flat.at(0), 2e-3);
}

std::vector<int32_t> iota_ids(int64_t n) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 1000);
  return ids;
}

TEST(TokenBatcher, SequencesAreBosThenWindowAndShiftedTargets) {
  const auto ids = iota_ids(100);
  train::TokenBatcher b(ids, 8, 1, 42);
  std::vector<int32_t> in, tg;
  b.next(3, in, tg);
  ASSERT_EQ(in.size(), 24u);
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(in[s * 8], 1);
    for (int t = 0; t < 7; ++t) EXPECT_EQ(in[s * 8 + t + 1], tg[s * 8 + t]);
    for (int t = 0; t < 7; ++t) EXPECT_EQ(tg[s * 8 + t + 1], tg[s * 8 + t] + 1);  // consecutive text
  }
}

TEST(TokenBatcher, EpochCoversEveryWindowOnceAndSeedsDiffer) {
  const auto ids = iota_ids(1000);
  train::TokenBatcher b(ids, 10, 1, 7), same(ids, 10, 1, 7), other(ids, 10, 1, 8);
  const int64_t n = b.windows();
  std::set<int32_t> starts;
  std::vector<int32_t> in, tg, in2, tg2, in3, tg3;
  for (int64_t i = 0; i < n; ++i) {
    b.next(1, in, tg);
    same.next(1, in2, tg2);
    other.next(1, in3, tg3);
    EXPECT_EQ(tg, tg2);
    starts.insert(tg[0]);
  }
  EXPECT_EQ(static_cast<int64_t>(starts.size()), n);  // a permutation of the windows
  // Window starts are offset + k * 10 for one offset of the epoch.
  for (int32_t s : starts) EXPECT_EQ((s - *starts.begin()) % 10, 0);
  EXPECT_NE(tg, tg3);
  b.next(1, in, tg);  // into the next epoch
  EXPECT_EQ(b.epoch(), 1);
}

TEST(TokenBatcher, StateRestoresTheExactStream) {
  const auto ids = iota_ids(500);
  train::TokenBatcher a(ids, 12, 1, 3);
  std::vector<int32_t> in, tg, in2, tg2;
  for (int i = 0; i < 7; ++i) a.next(5, in, tg);  // crosses an epoch (41 windows)
  const auto st = a.state();
  train::TokenBatcher b(ids, 12, 1, 999);
  b.restore(st);
  for (int i = 0; i < 20; ++i) {
    a.next(5, in, tg);
    b.next(5, in2, tg2);
    ASSERT_EQ(tg, tg2) << "batch " << i;
    ASSERT_EQ(in, in2);
  }
}

TEST(TokenBatcher, RefusesTooShortText) {
  const auto ids = iota_ids(15);
  EXPECT_THROW(train::TokenBatcher(ids, 8, 1, 0), Error);
}

}  // namespace
}  // namespace mlar::test
