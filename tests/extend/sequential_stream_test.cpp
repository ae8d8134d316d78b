// Sequential calibration in one pass over the layers (runtime/carried_states.h): the carried
// residual stream gives the statistics the layer-by-layer passes through the partly
// converted model give, in memory or file-backed; a BF16 source is converted with
// its layers kept in BF16; the attention statistics read BF16 weights, and their
// value spread is the definition's.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "convert/extend.h"
#include "convert/extend_calib.h"
#include "extend/extend_fixtures.h"
#include "runtime/carried_states.h"

namespace mlar {
namespace {

using test::extend_config;
using test::fixed_options;
using test::random_ids;

// Every 2-D layer tensor of `m` rounded to BF16 (what a BF16 checkpoint holds).
Model bf16_copy(const Model& m) {
  Model out = m;
  for (auto& L : out.weights.layers)
    for (TypedTensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) *t = t->cast(DType::BF16);
  return out;
}

// The statistics of layer l from the carried states (advanced through the MLA layers
// of `mla` below l) equal those of a forward pass of the partly converted model.
TEST(CarriedStates, CarriedStatesGiveTheHybridPassStatistics) {
  ModelConfig c = extend_config(2);
  c.num_layers = 3;
  const Model src = random_model(c, 21);
  const auto calib = random_ids(400, c.vocab_size, 22);
  const Model mla = convert_extend(src, fixed_options(), calib);
  CalibWindows w;
  w.ids = calib;
  w.len = 24;
  StatsWanted want;
  want.attention = true;
  CpuCarriedStates states(src, w.all());
  EXPECT_EQ(states.bytes(), w.count() * w.len * c.hidden_size * 4);
  EXPECT_FALSE(states.file_backed());
  std::vector<MlaLayerWeights> done;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerStatsBuilder b(src, l, w.len, want);
    states.attention_inputs(c, src.weights.layers[static_cast<size_t>(l)],
                            [&](int64_t, const float* x, int64_t n) { b.add(x, n); });
    const LayerStats got = b.finish();
    const LayerStats ref = hybrid_pass(src, mla.config, done, l, w, want, {});
    ASSERT_EQ(got.S.a.size(), ref.S.a.size());
    for (size_t i = 0; i < ref.S.a.size(); ++i) ASSERT_NEAR(got.S.a[i], ref.S.a[i], 1e-12 + 1e-9 * std::abs(ref.S.a[i]));
    for (int64_t h = 0; h < c.num_heads; ++h) {
      EXPECT_NEAR(got.attention.value_spread(h), ref.attention.value_spread(h), 1e-9 * ref.attention.value_spread(h));
      const auto [a, s] = got.attention.mean_rotation(h, 0.3);
      const auto [ra, rs] = ref.attention.mean_rotation(h, 0.3);
      EXPECT_NEAR(a, ra, 1e-12);
      EXPECT_NEAR(s, rs, 1e-12);
    }
    done.push_back(mla.weights.layers[static_cast<size_t>(l)].mla);
    states.advance(mla.config, l, src.weights.layers[static_cast<size_t>(l)], &done.back());
  }
}

TEST(CarriedStates, FileBackedEqualsInMemory) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 23);
  const auto calib = random_ids(500, c.vocab_size, 24);
  ExtendOptions o = fixed_options();
  ExtendReport mem_rep, file_rep;
  const Model a = convert_extend(src, o, calib, &mem_rep);
  o.carried_max_in_memory = 0;
  const Model b = convert_extend(src, o, calib, &file_rep);
  EXPECT_FALSE(mem_rep.memory.carried_file_backed);
  EXPECT_TRUE(file_rep.memory.carried_file_backed);
  EXPECT_EQ(mem_rep.memory.carried_states, file_rep.memory.carried_states);
  EXPECT_EQ(mem_rep.memory.carried_states, mem_rep.calib_tokens * c.hidden_size * 4);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const auto& x = a.weights.layers[static_cast<size_t>(l)].mla;
    const auto& y = b.weights.layers[static_cast<size_t>(l)].mla;
    EXPECT_EQ(x.wq.to_f32().data, y.wq.to_f32().data);
    EXPECT_EQ(x.w_dkv.to_f32().data, y.w_dkv.to_f32().data);
    EXPECT_EQ(x.w_uv.to_f32().data, y.w_uv.to_f32().data);
  }
}

TEST(ExtendSequential, ReportsTimesAndMemory) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 25);
  const auto calib = random_ids(500, c.vocab_size, 26);
  ExtendReport rep;
  convert_extend(src, fixed_options(), calib, &rep);
  EXPECT_EQ(rep.layer_times.size(), static_cast<size_t>(c.num_layers));
  EXPECT_EQ(rep.layer_times.back().advance, 0.0);  // nothing after the last layer
  ASSERT_FALSE(rep.timings.empty());
  EXPECT_EQ(rep.timings.back().first, "total");
  EXPECT_EQ(rep.memory.second_moment, (c.hidden_size + 1) * (c.hidden_size + 1) * 8);
  EXPECT_EQ(rep.memory.source_pass, 0);  // fixed choices: no all-layer pass
  EXPECT_EQ(rep.calib_passes, c.num_layers);
  const auto j = rep.to_json();
  EXPECT_TRUE(j.at("timings").contains("total"));
  EXPECT_EQ(j.at("calibration").at("memory").at("carried_state_bytes").get<int64_t>(), rep.memory.carried_states);
  EXPECT_EQ(j.at("layer_seconds").size(), static_cast<size_t>(c.num_layers));
}

// A BF16 source: the attention statistics read it (widened), the converted layers
// are kept in BF16, and the result is the conversion of the same (rounded) weights
// held as float32 up to the BF16 rounding of the new tensors.
TEST(ExtendSequential, Bf16SourceKeepsBf16Layers) {
  const ModelConfig c = extend_config(2);
  const Model bf = bf16_copy(random_model(c, 27));
  Model f32 = bf;
  for (auto& L : f32.weights.layers)
    for (TypedTensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) *t = t->to_f32();
  const auto calib = random_ids(500, c.vocab_size, 28);
  const Model a = convert_extend(bf, fixed_options(), calib);
  const Model b = convert_extend(f32, fixed_options(), calib);
  for (const auto& L : a.weights.layers) {
    EXPECT_EQ(L.mla.wq.dtype, DType::BF16);
    EXPECT_EQ(L.mla.w_dkv.dtype, DType::BF16);
    EXPECT_EQ(L.mla.w_uk.dtype, DType::BF16);
    EXPECT_EQ(L.mla.wo.dtype, DType::BF16);
  }
  EXPECT_EQ(b.weights.layers[0].mla.wq.dtype, DType::F32);
  // Layer 0 sees the same inputs either way: its new tensors agree to BF16 rounding.
  const Tensor wa = a.weights.layers[0].mla.w_dkv.to_f32(), wb = b.weights.layers[0].mla.w_dkv.to_f32();
  for (size_t i = 0; i < wb.data.size(); ++i) ASSERT_NEAR(wa.data[i], wb.data[i], 1e-2 * std::abs(wb.data[i]) + 1e-6);
  const auto ids = random_ids(20, c.vocab_size, 29);
  const Tensor la = test::runtime_logits(a, ids), lb = test::runtime_logits(b, ids);
  EXPECT_LE(test::max_abs_diff(la, lb), 0.05 * test::max_abs(lb));
}

// value_spread against its definition: E_m sum_n p(m,n) |W_o[h] (v_n - vbar_m)|^2.
TEST(AttentionStats, ValueSpreadIsTheDefinition) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 31);
  const LayerWeights& L = src.weights.layers[0];
  const int64_t n = 12, D = c.hidden_size, H = c.num_heads, J = c.num_kv_heads, d = c.head_dim, g = H / J;
  std::mt19937_64 rng(32);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(n * D));
  for (auto& v : x) v = nd(rng);
  DistanceHistogram hist(c, n);
  hist.add(c, L, x.data(), n);
  DistanceHistogram hist_bf(c, n);  // the same weights as BF16 views of their rounding
  const Model bf = bf16_copy(src);
  hist_bf.add(c, bf.weights.layers[0], x.data(), n);
  // Reference in double, with the runtime's RoPE convention (rope_table.h).
  const Tensor wq = L.wq.to_f32(), wk = L.wk.to_f32(), wv = L.wv.to_f32(), wo = L.wo.to_f32();
  const auto inv = test::naive_inv_freq(c);
  auto proj = [&](const Tensor& w, int64_t t, int64_t row) {
    double a = 0;
    for (int64_t i = 0; i < D; ++i) a += double(w.data[row * D + i]) * x[t * D + i];
    return a;
  };
  auto roped = [&](const Tensor& w, int64_t t, int64_t head) {  // [d] of head at position t
    std::vector<double> v(d);
    for (int64_t i = 0; i < d; ++i) v[i] = proj(w, t, head * d + i);
    for (int64_t i = 0; i < d / 2; ++i) {
      const int64_t re = c.rope_layout == RopeLayout::Half ? i : 2 * i, im = c.rope_layout == RopeLayout::Half ? i + d / 2 : 2 * i + 1;
      const double ang = double(t) * inv[i], a = v[re], b = v[im];
      v[re] = a * std::cos(ang) - b * std::sin(ang);
      v[im] = a * std::sin(ang) + b * std::cos(ang);
    }
    return v;
  };
  for (int64_t h = 0; h < H; ++h) {
    const int64_t j = h / g;
    double total = 0;
    for (int64_t m = 0; m < n; ++m) {
      const auto q = roped(wq, m, h);
      std::vector<double> p(m + 1);
      double mx = -1e300, z = 0;
      for (int64_t t = 0; t <= m; ++t) {
        const auto k = roped(wk, t, j);
        double s = 0;
        for (int64_t i = 0; i < d; ++i) s += q[i] * k[i];
        p[t] = s / std::sqrt(double(d));
        mx = std::max(mx, p[t]);
      }
      for (auto& e : p) z += (e = std::exp(e - mx));
      std::vector<std::vector<double>> u(m + 1, std::vector<double>(D));
      std::vector<double> ubar(D, 0.0);
      for (int64_t t = 0; t <= m; ++t) {
        p[t] /= z;
        for (int64_t o = 0; o < D; ++o) {
          double a = 0;
          for (int64_t i = 0; i < d; ++i) a += double(wo.data[o * H * d + h * d + i]) * proj(wv, t, j * d + i);
          u[t][o] = a;
          ubar[o] += p[t] * a;
        }
      }
      for (int64_t t = 0; t <= m; ++t)
        for (int64_t o = 0; o < D; ++o) total += p[t] * (u[t][o] - ubar[o]) * (u[t][o] - ubar[o]);
    }
    const double ref = total / double(n);
    EXPECT_NEAR(hist.value_spread(h), ref, 1e-4 * ref) << "head " << h;
    EXPECT_GT(ref, 0.0);
  }
  // BF16 weights are read (widened): the same statistics as their float32 rounding.
  Model bf32 = bf;
  for (auto& l : bf32.weights.layers)
    for (TypedTensor* t : {&l.wq, &l.wk, &l.wv, &l.wo}) *t = t->to_f32();
  DistanceHistogram hist_bf32(c, n);
  hist_bf32.add(c, bf32.weights.layers[0], x.data(), n);
  for (int64_t h = 0; h < H; ++h) {
    EXPECT_DOUBLE_EQ(hist_bf.value_spread(h), hist_bf32.value_spread(h));
    EXPECT_DOUBLE_EQ(hist_bf.mean_rotation(h, 0.5).first, hist_bf32.mean_rotation(h, 0.5).first);
  }
}

// take_mean: the mean computed in place of the sum, identical to mean(); spent after.
TEST(CalibStats, TakeMeanIsTheMeanInPlace) {
  std::mt19937_64 rng(33);
  std::normal_distribution<float> nd;
  std::vector<float> x(7 * 5);
  for (auto& v : x) v = nd(rng);
  SecondMoment m(5);
  m.add(x.data(), 4);
  m.add(x.data() + 20, 3);
  const la::Mat want = m.mean();
  const la::Mat got = m.take_mean();
  EXPECT_EQ(got.a, want.a);
  EXPECT_EQ(got.rows, 6);
  EXPECT_NE(test::error_message([&] { m.add(x.data(), 1); }), "");
  EXPECT_NE(test::error_message([&] { (void)m.mean(); }), "");
}

}  // namespace
}  // namespace mlar
