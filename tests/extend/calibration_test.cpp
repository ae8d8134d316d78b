// Calibration: windows, the observer seam, source vs sequential statistics, the
// attention distance histogram and the mean rotation, the RMSNorm fits.
#include <gtest/gtest.h>

#include <cmath>

#include "common/typed_values.h"
#include "convert/extend_calib.h"
#include "convert/extend_layer.h"
#include "convert/norm_fit.h"
#include "extend/extend_fixtures.h"
#include "ops/rmsnorm.h"

namespace mlar {
namespace {

using test::extend_config;
using test::random_ids;

TEST(CalibWindows, FullWindowsWithBos) {
  const auto ids = random_ids(100, 50, 1);
  CalibWindows w;
  w.ids = ids;
  w.len = 16;
  w.bos = 1;
  EXPECT_EQ(w.count(), 6);  // 100 / 15
  EXPECT_EQ(w.tokens(), 96);
  const auto win = w.window(2);
  ASSERT_EQ(win.size(), 16u);
  EXPECT_EQ(win[0], 1);
  EXPECT_EQ(win[1], ids[30]);
  EXPECT_EQ(win[15], ids[44]);
  w.max_tokens = 40;  // 2 windows of 16
  EXPECT_EQ(w.count(), 2);
}

TEST(CalibRun, ObservesTheAttentionInputAndStopsEarly) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 3);
  const auto ids = random_ids(200, c.vocab_size, 4);
  CalibWindows w;
  w.ids = ids;
  w.len = 20;
  // Layer 0's input is rmsnorm(embedding, attn_norm).
  std::vector<float> first;
  int64_t calls_full = 0, calls_stop = 0;
  observe_attention_inputs(src, hybrid_attention(src, c, {}), w, -1, [&](int64_t l, const float* x, int64_t n) {
    ++calls_full;
    if (l == 0 && first.empty()) first.assign(x, x + n * c.hidden_size);
  });
  EXPECT_EQ(calls_full, w.count() * c.num_layers);
  std::vector<float> h, want(first.size());
  const auto win = w.window(0);
  for (int32_t t : win) h.insert(h.end(), src.weights.embed.row(t), src.weights.embed.row(t) + c.hidden_size);
  ops::rmsnorm(h.data(), src.weights.layers[0].attn_norm.ptr(), want.data(), w.len, c.hidden_size,
               static_cast<float>(c.rms_norm_eps));
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(first[i], want[i], 1e-6);
  // Stopping after layer 0 sees the same layer-0 statistics and nothing after.
  StatsWanted want_stats;
  const std::vector<LayerStats> all = source_pass(src, w, want_stats, false);
  const LayerStats l0 = hybrid_pass(src, c, {}, 0, w, want_stats, {});
  for (size_t i = 0; i < l0.S.a.size(); ++i) ASSERT_DOUBLE_EQ(l0.S.a[i], all[0].S.a[i]);
  observe_attention_inputs(src, hybrid_attention(src, c, {}), w, 0, [&](int64_t l, const float*, int64_t) {
    EXPECT_EQ(l, 0);
    ++calls_stop;
  });
  EXPECT_EQ(calls_stop, w.count());
}

// Sequential calibration: layer 0 is calibrated on the source either way; layer 1
// sees the converted layer 0 and so differs from the parallel (source) statistics.
TEST(CalibRun, SequentialSeesTheConvertedLayers) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 5);
  const auto calib = random_ids(1000, c.vocab_size, 6);
  ExtendOptions o = test::fixed_options();
  o.calib_len = 32;
  ExtendReport seq_rep, par_rep;
  const Model seq = convert_extend(src, o, calib, &seq_rep);
  o.calib_mode = CalibMode::Parallel;
  const Model par = convert_extend(src, o, calib, &par_rep);
  EXPECT_EQ(seq_rep.calib_passes, 2);  // one per layer
  EXPECT_EQ(par_rep.calib_passes, 1);
  test::expect_identical(seq.weights.layers[0].mla.w_dkv, par.weights.layers[0].mla.w_dkv, "layer 0 w_dkv");
  EXPECT_NE(test::f32_values(seq.weights.layers[1].mla.w_dkv), test::f32_values(par.weights.layers[1].mla.w_dkv));
}

TEST(AttentionStats, HistogramAndMeanRotation) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 7);
  const auto ids = random_ids(100, c.vocab_size, 8);
  CalibWindows w;
  w.ids = ids;
  w.len = 25;
  StatsWanted want;
  want.attention = true;
  const auto st = source_pass(src, w, want, false);
  // Zero frequency: no rotation at all; each query's weights sum to 1.
  for (int64_t h = 0; h < c.num_heads; ++h) {
    const auto [a, b] = st[0].attention.mean_rotation(h, 0.0);
    EXPECT_NEAR(a, 1.0, 1e-9);
    EXPECT_NEAR(b, 0.0, 1e-12);
    const auto [a1, b1] = st[0].attention.mean_rotation(h, 1.0);
    EXPECT_LT(a1 * a1 + b1 * b1, 1.0);  // spread over distances: |E e^{iwt}| < 1
    EXPECT_GT(st[0].attention.value_spread(h), 0.0);
  }
  // M^T q . k == q . R_{-w t} k when all the attention is at distance t.
  const double w0 = 0.7, t = 3;
  const double qr = 0.3, qi = -1.1, kr = 0.8, ki = 0.45;
  const auto [mr, mi] = mean_rotated(qr, qi, std::cos(w0 * t), std::sin(w0 * t));
  const double ang = -w0 * t;  // R_{n-m} with n - m = -t, RoPE's rotation
  const double rr = kr * std::cos(ang) - ki * std::sin(ang), ri = kr * std::sin(ang) + ki * std::cos(ang);
  EXPECT_NEAR(mr * kr + mi * ki, qr * rr + qi * ri, 1e-12);
}

// With nothing moved to NoPE (MQA, every frequency kept), the mean rotation has
// nothing to act on: the conversion stays exact.
TEST(AttentionStats, MeanRotationKeepsAnExactConversionExact) {
  const ModelConfig c = extend_config(1);
  const Model src = random_model(c, 9);
  const auto calib = random_ids(800, c.vocab_size, 10);
  const auto ids = random_ids(30, c.vocab_size, 11);
  ExtendOptions o = test::full_rank_options(c, RopeStrategy::RoRoPE, 8, 1);
  o.nope_rotation = NopeRotation::Mean;
  const Model mla = convert_extend(src, o, calib);
  EXPECT_LE(test::max_abs_diff(test::runtime_logits(mla, ids), test::runtime_logits(src, ids)), 1e-4);
}

TEST(NormFit, LatentNormIsTheLeastSquaresWeight) {
  MlaLayerWeights w;
  w.w_dkv = Tensor({3, 2}, {1, 0, 0, 1, 1, 1});
  Reservoir xs(2, 100);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> g;
  std::vector<float> x(2 * 60);
  for (float& v : x) v = g(rng);
  xs.add(x.data(), 60);
  const double eps = 1e-5;
  const Tensor wn = fit_latent_norm(w, xs, eps);
  // The derivative of sum_t (c_i/rho * w_i - c_i)^2 vanishes at w_i.
  for (int64_t i = 0; i < 3; ++i) {
    double grad = 0;
    for (int64_t t = 0; t < 60; ++t) {
      const double c0 = x[2 * t], c1 = x[2 * t + 1];
      const double cs[3] = {c0, c1, c0 + c1};
      const double rho = std::sqrt((cs[0] * cs[0] + cs[1] * cs[1] + cs[2] * cs[2]) / 3 + eps);
      grad += (cs[i] / rho * wn.data[i] - cs[i]) * cs[i] / rho;
    }
    EXPECT_NEAR(grad, 0.0, 1e-3);
  }
}

// scale_latent_for_norm is an exact reparametrisation without the norm, and with it
// helps where the kv basis lets an unimportant coordinate set the rms: here c_2 is
// 100x larger than c_0, c_1 but barely reaches the keys and values.
TEST(NormFit, LatentRescaleIsExactAndHelpsTheNorm) {
  MlaLayerWeights w;
  w.w_dkv = Tensor({3, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 100});
  w.b_dkv = Tensor({3}, {0.1f, -0.2f, 5});
  w.w_uk = Tensor({2, 3}, {1, 0.5f, 0.001f, -0.5f, 1, 0.001f});
  w.w_uv = Tensor({2, 3}, {0.7f, -1, 0.002f, 1, 0.3f, -0.001f});
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g;
  const int64_t n = 400;
  std::vector<float> x(3 * n);
  for (float& v : x) v = g(rng);
  Reservoir xs(3, n);
  xs.add(x.data(), n);
  const double eps = 1e-6;
  // Sample t's latent c = W_dkv x + b_dkv of layer l; returns sum c^2.
  auto latent = [&](const MlaLayerWeights& l, int64_t t, std::vector<double>& c) {
    c.assign(3, 0.0);
    double ss = 0;
    for (int64_t i = 0; i < 3; ++i) {
      c[i] = l.b_dkv.ptr()[i];
      for (int64_t j = 0; j < 3; ++j) c[i] += double(l.w_dkv.row(i)[j]) * x[3 * t + j];
      ss += c[i] * c[i];
    }
    return ss;
  };
  // Keys and values of every sample: up(RMSNorm(c) * kv_norm) with the norm, up(c) without.
  auto outputs = [&](const MlaLayerWeights& l, const Tensor* norm) {
    std::vector<double> out, c;
    for (int64_t t = 0; t < n; ++t) {
      const double ss = latent(l, t, c);
      if (norm)
        for (int64_t i = 0; i < 3; ++i) c[i] *= norm->data[i] / std::sqrt(ss / 3 + eps);
      for (const TypedTensor* up : {&l.w_uk, &l.w_uv})
        for (int64_t o = 0; o < 2; ++o) {
          double y = 0;
          for (int64_t i = 0; i < 3; ++i) y += double(up->row(o)[i]) * c[i];
          out.push_back(y);
        }
    }
    return out;
  };
  auto sq_err = [](const std::vector<double>& a, const std::vector<double>& b) {
    double e = 0;
    for (size_t i = 0; i < a.size(); ++i) e += (a[i] - b[i]) * (a[i] - b[i]);
    return e;
  };
  const auto exact = outputs(w, nullptr);
  MlaLayerWeights scaled = w;
  const LatentScale ls = scale_latent_for_norm(scaled, xs, eps);
  // The latent is brought below sqrt(eps), where the norm is nearly linear.
  EXPECT_EQ(ls.kappa, 0.1);
  EXPECT_LT(ls.sigma, 1e-3);
  // Without the norm, the rescaled layer is the same model times sigma (linear).
  const auto same = outputs(scaled, nullptr);
  for (size_t i = 0; i < exact.size(); ++i)
    EXPECT_NEAR(same[i] / ls.sigma, exact[i], 1e-4 * (1 + std::fabs(exact[i])));
  const Tensor norm_before = fit_latent_norm(w, xs, eps), norm_after = fit_latent_norm(scaled, xs, eps, ls.sigma);
  const double before = sq_err(outputs(w, &norm_before), exact), after = sq_err(outputs(scaled, &norm_after), exact);
  EXPECT_LT(after, 1e-3 * before) << "before " << before << " after " << after;
  // The normalised latent (what the cache holds) keeps its usual size: mean square
  // within 100x of the plain fit's.
  auto cached_ms = [&](const MlaLayerWeights& l, const Tensor& norm) {
    double ms = 0;
    std::vector<double> c;
    for (int64_t t = 0; t < n; ++t) {
      const double ss = latent(l, t, c);
      for (int64_t i = 0; i < 3; ++i) ms += std::pow(c[i] * norm.data[i] / std::sqrt(ss / 3 + eps), 2);
    }
    return ms / (3.0 * n);
  };
  const double ratio = cached_ms(scaled, norm_after) / cached_ms(w, norm_before);
  EXPECT_GT(ratio, 0.01);
  EXPECT_LT(ratio, 100);
}

TEST(NormFit, QueryFactorImprovesWithRank) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 12);
  const auto calib = random_ids(1200, c.vocab_size, 13);
  const auto ids = random_ids(30, c.vocab_size, 14);
  ExtendOptions o = test::full_rank_options(c, RopeStrategy::RoRoPE, 8, 1);
  const Tensor want = test::runtime_logits(convert_extend(src, o, calib), ids);
  double prev = 1e300;
  for (int64_t q : {4, 16, 32}) {
    o.q_lora_rank = q;
    const Model m = convert_extend(src, o, calib);
    EXPECT_EQ(m.config.mla->q_lora_rank, q);
    EXPECT_TRUE(m.weights.layers[0].mla.wq.empty());
    const double d = test::max_abs_diff(test::runtime_logits(m, ids), want);
    EXPECT_LT(d, prev) << q;
    prev = d;
  }
}

}  // namespace
}  // namespace mlar
