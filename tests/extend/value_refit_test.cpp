// Value refit (convert/value_refit.h): the errors it reports are the attention block's
// output errors measured directly, before and after, with the rank below and above the
// head size; with one head per block it is the least-squares optimum (it recovers
// values made worse on purpose); the CLI runs it in sequential calibration.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "convert/extend.h"
#include "convert/extend_calib.h"
#include "convert/value_refit.h"
#include "extend/extend_fixtures.h"
#include "runtime/carried_states.h"
#include "runtime/gqa_attention.h"
#include "runtime/mla_attention.h"
#include "runtime/rope_table.h"

namespace mlar {
namespace {

using test::extend_config;
using test::random_ids;

struct Fixture {
  ModelConfig c;
  Model src, mla;
  std::vector<int32_t> calib;
  CalibWindows w;  // windows of calib
};

void make(Fixture& f, int64_t rank, uint64_t seed) {
  f.c = extend_config(2);
  f.src = random_model(f.c, seed);
  f.calib = random_ids(480, f.c.vocab_size, seed + 1);
  ExtendOptions o = test::fixed_options();
  o.kv_lora_rank = rank;
  o.value_refit_tokens = 0;  // the conversion's own values; the tests refit them
  f.mla = convert_extend(f.src, o, f.calib);
  f.w.ids = f.calib;
  f.w.len = 24;
}

// sum over the windows of |MLA block(x) - source block(x)|^2, and sum |source block(x)|^2, for layer 0.
std::pair<double, double> block_error(const Fixture& f, const CarriedStates& states, const MlaLayerWeights& w) {
  const LayerWeights& L = f.src.weights.layers[0];
  const GqaAttention source(f.c, L, rope_inv_freq(f.c));
  const MlaAttention converted(f.mla.config, 0, w);
  Workspace ws;
  double err = 0, energy = 0;
  states.attention_inputs(f.c, L, [&](int64_t, const float* x, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n * f.c.hidden_size)), z(y.size());
    auto sc = source.make_cache(DType::F32), mc = converted.make_cache(DType::F32);
    sc->reserve(n);
    mc->reserve(n);
    source.forward(x, n, 0, *sc, ws, y.data());
    converted.forward(x, n, 0, *mc, ws, z.data());
    for (size_t i = 0; i < y.size(); ++i) {
      err += (static_cast<double>(z[i]) - y[i]) * (static_cast<double>(z[i]) - y[i]);
      energy += static_cast<double>(y[i]) * y[i];
    }
  });
  return {err, energy};
}

// One block of every head: the reported relative errors are the block output's, measured.
void expect_reported_errors_measured(int64_t rank) {
  Fixture f;
  make(f, rank, 41);
  const CpuCarriedStates states(f.src, f.w.all());
  MlaLayerWeights w = f.mla.weights.layers[0].mla;
  const auto [e0, y0] = block_error(f, states, w);
  const ValueRefitResult r = refit_outputs(states, f.src, 0, f.mla.config, w, 0, f.c.num_heads);
  const auto [e1, y1] = block_error(f, states, w);
  ASSERT_EQ(r.before.size(), 1u);
  EXPECT_EQ(r.tokens, f.w.count() * f.w.len);
  EXPECT_NEAR(r.before[0], e0 / y0, 1e-5 * (e0 / y0)) << "rank " << rank;
  EXPECT_NEAR(r.after[0], e1 / y1, 1e-5 * (e1 / y1)) << "rank " << rank;
  EXPECT_LT(r.after[0], 0.9 * r.before[0]) << "rank " << rank;  // the fit pays on a low-rank random model
}

TEST(ValueRefit, ReportedErrorsAreTheMeasuredOutputErrors) { expect_reported_errors_measured(6); }

// Rank 12 > head size 8: each head's product is cut to 8 directions (reduced-rank regression).
TEST(ValueRefit, RankAboveHeadSizeKeepsTheBestDirections) { expect_reported_errors_measured(12); }

// One head per block, rank <= d: the fit is the least-squares optimum over every W_o[h] W_uv[h],
// so from values spoiled by noise it gets at least as close as the conversion's own values.
TEST(ValueRefit, RecoversSpoiledValues) {
  Fixture f;
  make(f, 6, 43);
  const CpuCarriedStates states(f.src, f.w.all());
  const MlaLayerWeights good = f.mla.weights.layers[0].mla;
  const auto [e_good, energy] = block_error(f, states, good);
  MlaLayerWeights spoiled = good;
  Tensor uv = spoiled.w_uv.to_f32();
  std::mt19937_64 rng(44);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  for (int64_t i = 0; i < uv.numel(); ++i) uv.data[static_cast<size_t>(i)] += noise(rng);
  spoiled.w_uv = TypedTensor(uv);
  const auto [e_spoiled, energy2] = block_error(f, states, spoiled);
  ASSERT_GT(e_spoiled, 2 * e_good);
  const ValueRefitResult r = refit_outputs(states, f.src, 0, f.mla.config, spoiled, 0, 1);
  const auto [e_fit, energy3] = block_error(f, states, spoiled);
  EXPECT_LE(e_fit, e_good * (1 + 1e-6));
  EXPECT_EQ(r.before.size(), static_cast<size_t>(f.c.num_heads));
}

TEST(ValueRefit, RefusesStoredAbsorbedWeights) {
  Fixture f;
  make(f, 6, 45);
  const CpuCarriedStates states(f.src, f.w.all());
  MlaLayerWeights w = f.mla.weights.layers[0].mla;
  w.w_uv = TypedTensor{};
  EXPECT_THROW(refit_outputs(states, f.src, 0, f.mla.config, w, 0, 1), Error);
  w = f.mla.weights.layers[0].mla;
  EXPECT_THROW(refit_outputs(states, f.src, 0, f.mla.config, w, 0, 3), Error);  // 3 does not divide 4 heads
}

// In convert: the refit stage is reported and lowers the block error it reports.
TEST(ValueRefit, ConvertRunsItInSequentialCalibration) {
  const ModelConfig c = extend_config(2);
  const Model src = random_model(c, 47);
  const auto calib = random_ids(480, c.vocab_size, 48);
  ExtendOptions o = test::fixed_options();
  o.value_refit_tokens = 0;
  ExtendReport plain, refit;
  const Model a = convert_extend(src, o, calib, &plain);
  o.value_refit_tokens = 240;
  const Model b = convert_extend(src, o, calib, &refit);
  ASSERT_EQ(refit.value_refit.size(), static_cast<size_t>(c.num_layers));
  EXPECT_TRUE(plain.value_refit.empty());
  for (const auto& l : refit.value_refit) {
    EXPECT_EQ(l.tokens, 240);
    EXPECT_LE(l.mean_after(), l.mean_before());
  }
  // The latent, rope key and queries are the conversion's own; W_uv and W_o change.
  const auto& la = a.weights.layers[0].mla;
  const auto& lb = b.weights.layers[0].mla;
  EXPECT_EQ(la.w_dkv.to_f32().data, lb.w_dkv.to_f32().data);
  EXPECT_NE(la.w_uv.to_f32().data, lb.w_uv.to_f32().data);
}

}  // namespace
}  // namespace mlar
