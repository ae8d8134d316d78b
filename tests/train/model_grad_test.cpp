// Whole-model gradient checks: the loss  mean CE + 0.5 * mean KL(teacher || student)
// on two sequences, differentiated by TrainModel::backward (float32), against
// central differences of the same loss computed by the independent double-precision
// reference forwards of the runtime tests (runtime/naive_forward.h,
// mla/mla_naive_forward.h), for a sample of entries of every tensor.
// Central differences with a step of 1e-4 (the reference is double, so its rounding
// is negligible). Tolerance per sampled entry: |analytic - fd| <= 2e-3 |fd| + 2e-5 G,
// G the largest |gradient| of the tensor: float32 rounding of the training code, which
// matters most where a gradient is a small sum of cancelling terms (key biases under
// RoPE: measured worst 9e-4 |fd|; most tensors below 1e-4).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "common/typed_values.h"
#include "mla/mla_naive_forward.h"
#include "runtime/naive_forward.h"
#include "train/grad_check.h"
#include "train/ops_loss.h"
#include "train/params.h"
#include "train/train_model.h"
#include "train/train_models.h"

namespace mlar::test {
namespace {

using train::BatchShape;

constexpr int64_t kSeqs = 2, kLen = 6;
constexpr double kKlWeight = 0.5;

struct Problem {
  std::vector<int32_t> tokens;   // [kSeqs * kLen]
  std::vector<int32_t> targets;  // [kSeqs * kLen]
  std::vector<float> teacher;    // [kSeqs * kLen, V] logits
};

Problem make_problem(int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Problem p;
  for (int64_t i = 0; i < kSeqs * kLen; ++i) {
    p.tokens.push_back(static_cast<int32_t>(rng() % V));
    p.targets.push_back(static_cast<int32_t>(rng() % V));
  }
  p.targets[3] = -1;  // one position not scored
  p.teacher = rand_floats(kSeqs * kLen * V, seed + 1, 3.0);
  return p;
}

double lse(const double* x, int64_t V) {
  double mx = -1e300, z = 0;
  for (int64_t i = 0; i < V; ++i) mx = std::max(mx, x[i]);
  for (int64_t i = 0; i < V; ++i) z += std::exp(x[i] - mx);
  return mx + std::log(z);
}

// The loss by the double-precision reference forward.
double reference_loss(const Model& m, const Problem& p) {
  const int64_t V = m.config.vocab_size;
  double ce = 0, kl = 0;
  int64_t scored = 0;
  for (int64_t s = 0; s < kSeqs; ++s) {
    const std::vector<int32_t> seq(p.tokens.begin() + s * kLen, p.tokens.begin() + (s + 1) * kLen);
    const auto logits = m.config.mla ? naive_mla_forward(m, seq) : naive_forward(m, seq);
    for (int64_t t = 0; t < kLen; ++t) {
      const int64_t row = s * kLen + t;
      const int32_t tg = p.targets[row];
      if (tg < 0) continue;
      ++scored;
      const double ls = lse(logits[t].data(), V);
      ce += ls - logits[t][tg];
      std::vector<double> te(p.teacher.begin() + row * V, p.teacher.begin() + (row + 1) * V);
      const double lt = lse(te.data(), V);
      for (int64_t v = 0; v < V; ++v) kl += std::exp(te[v] - lt) * ((te[v] - lt) - (logits[t][v] - ls));
    }
  }
  return (ce + kKlWeight * kl) / double(scored);
}

// Analytic gradients (all tensors trained) and the loss, by the training code.
double analytic(const Model& m, const Problem& p, ModelWeights& grads) {
  const int64_t N = kSeqs * kLen, V = m.config.vocab_size;
  train::TrainModel tm(m);
  train::Activations a;
  tm.forward(p.tokens, BatchShape{kSeqs, kLen}, a);
  int64_t scored = 0;
  for (int32_t t : p.targets) scored += t >= 0;
  std::vector<float> dl(static_cast<size_t>(N * V));
  const double inv = 1.0 / double(scored);
  const double ce = train::cross_entropy(a.logits.data(), p.targets.data(), N, V, dl.data(), inv);
  const double kl = train::kl_divergence(p.teacher.data(), a.logits.data(), p.targets.data(), N, V, dl.data(),
                                         kKlWeight * inv);
  tm.backward(a, dl.data(), grads);
  return (ce + kKlWeight * kl) * inv;
}

class ModelGrad : public ::testing::TestWithParam<TrainVariant> {};

TEST_P(ModelGrad, SampledParametersMatchFiniteDifferences) {
  Model m = train_model(GetParam(), 7);
  const Problem p = make_problem(m.config.vocab_size, 11);
  ModelWeights grads = train::make_gradients(m.weights, train::TrainScope::All);
  const double loss = analytic(m, p, grads);
  EXPECT_NEAR(loss, reference_loss(m, p), 1e-4 * std::abs(loss));

  auto params = train::trainable_params(m.weights, grads);
  std::mt19937_64 rng(3);
  const bool verbose = std::getenv("MLAR_GRAD_VERBOSE") != nullptr;
  double worst = 0;
  int checked = 0;
  for (auto& prm : params) {
    double G = 0;
    for (float g : f32_values(*prm.grad)) G = std::max(G, double(std::abs(g)));
    double tensor_worst = 0;
    for (int k = 0; k < 4; ++k) {
      const size_t i = static_cast<size_t>(rng() % static_cast<uint64_t>(prm.value->numel()));
      float& w = prm.value->ptr()[i];
      const float w0 = w;
      const float wp = static_cast<float>(double(w0) + 1e-4), wm = static_cast<float>(double(w0) - 1e-4);
      w = wp;
      const double lp = reference_loss(m, p);
      w = wm;
      const double lm = reference_loss(m, p);
      w = w0;
      const double fd = (lp - lm) / (double(wp) - double(wm));
      const double an = prm.grad->ptr()[i];
      const double err = std::abs(an - fd);
      EXPECT_LE(err, 2e-3 * std::abs(fd) + 2e-5 * G) << prm.name << "[" << i << "]: analytic " << an << ", fd " << fd;
      tensor_worst = std::max(tensor_worst, err / std::max(std::abs(fd), 1e-4 * G + 1e-30));
      ++checked;
    }
    worst = std::max(worst, tensor_worst);
    if (verbose) std::printf("  %-22s G %.3g  worst |a - fd| / max(|fd|, 1e-4 G) = %.3g\n", prm.name.c_str(), G, tensor_worst);
  }
  if (verbose) std::printf("  %s: %d entries of %zu tensors, worst %.3g\n", GetParam().name.c_str(), checked, params.size(), worst);
}

// --train attn: the same attention gradients; nothing else computed.
TEST_P(ModelGrad, AttentionScopeGivesTheSameAttentionGradients) {
  Model m = train_model(GetParam(), 8);
  const Problem p = make_problem(m.config.vocab_size, 12);
  ModelWeights all = train::make_gradients(m.weights, train::TrainScope::All);
  ModelWeights attn = train::make_gradients(m.weights, train::TrainScope::Attention);
  EXPECT_NEAR(analytic(m, p, all), analytic(m, p, attn), 1e-12);
  auto sa = train::tensor_slots(all), sb = train::tensor_slots(attn);
  int n_attn = 0;
  for (size_t i = 0; i < sa.size(); ++i) {
    if (!sb[i].attention) {
      EXPECT_TRUE(sb[i].tensor->empty()) << sb[i].name;
      continue;
    }
    if (sb[i].tensor->empty()) continue;
    ++n_attn;
    EXPECT_EQ(f32_values(*sa[i].tensor), f32_values(*sb[i].tensor)) << sb[i].name;
  }
  EXPECT_GT(n_attn, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ModelGrad,
    ::testing::Values(TrainVariant{"gqa", TrainVariant::Gqa},
                      TrainVariant{"gqa_qwen3_qknorm_interleaved", TrainVariant::Gqa, false, false, false, false,
                                   RopeLayout::Interleaved, true},
                      TrainVariant{"gqa_bias_tied_interleaved", TrainVariant::Gqa, true, true, false, false,
                                   RopeLayout::Interleaved},
                      TrainVariant{"deepseek_qlora_latentnorm_bias", TrainVariant::DeepSeek, true},
                      TrainVariant{"deepseek_interleaved_tied_per_layer", TrainVariant::DeepSeek, false, true, false,
                                   true, RopeLayout::Interleaved},
                      TrainVariant{"deepseek_absorbed", TrainVariant::DeepSeek, true, false, true},
                      TrainVariant{"repeat_wqr", TrainVariant::Repeat},
                      TrainVariant{"repeat_wqr_bias_interleaved", TrainVariant::Repeat, true, false, false, false,
                                   RopeLayout::Interleaved},
                      TrainVariant{"repeat_absorbed", TrainVariant::Repeat, false, false, true}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mlar::test
