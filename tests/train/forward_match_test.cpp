// The training forward computes what the runtime computes: TrainModel logits against
// a runtime Session (the code `eval` and `generate` run) for every variant, with the
// explicit rope frequencies partial-RoPE conversions record, and on stories260K.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "io/llama2c.h"
#include "common/test_data.h"
#include "runtime/session.h"
#include "train/train_model.h"
#include "train/train_models.h"

namespace mlar::test {
namespace {

// max |train - runtime| / max |runtime| over B sequences of L tokens.
double forward_gap(const Model& m, int64_t B, int64_t L, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(static_cast<size_t>(B * L));
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.config.vocab_size));
  train::TrainModel tm(m);
  train::Activations a;
  tm.forward(tokens, {B, L}, a);
  const int64_t V = m.config.vocab_size;
  double diff = 0, scale = 0;
  for (int64_t s = 0; s < B; ++s) {
    Session sess(m);
    const Tensor& lg = sess.forward(std::span<const int32_t>(tokens.data() + s * L, static_cast<size_t>(L)), Logits::All);
    for (int64_t i = 0; i < L * V; ++i) {
      diff = std::max(diff, double(std::abs(lg.data[i] - a.logits[static_cast<size_t>(s * L * V + i)])));
      scale = std::max(scale, double(std::abs(lg.data[i])));
    }
  }
  return diff / scale;
}

class ForwardMatch : public ::testing::TestWithParam<TrainVariant> {};

TEST_P(ForwardMatch, TrainForwardIsTheRuntimeForward) {
  const Model m = train_model(GetParam(), 21);
  EXPECT_LT(forward_gap(m, 3, 20, 1), 2e-5);
}

TEST(ForwardMatchExplicit, RopeFrequenciesFromTheConfig) {
  TrainVariant v{"ds", TrainVariant::DeepSeek, true};
  ModelConfig c = train_config(v);
  c.mla->rope_inv_freq = {0.7, 0.003};  // d_r = 4: two kept frequencies
  Model m = random_mla_model(c, 5);
  EXPECT_LT(forward_gap(m, 2, 30, 2), 2e-5);
}

TEST(ForwardMatchStories, Stories260K) {
  Model m = read_llama2c(data_path("models/stories260K/stories260K.bin"));
  convert_rope_layout(m.config, m.weights, RopeLayout::Half);
  EXPECT_LT(forward_gap(m, 2, 64, 3), 2e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ForwardMatch,
    ::testing::Values(TrainVariant{"gqa", TrainVariant::Gqa},
                      TrainVariant{"gqa_qwen3_qknorm_interleaved", TrainVariant::Gqa, false, false, false, false,
                                   RopeLayout::Interleaved, true},
                      TrainVariant{"gqa_bias_tied_interleaved", TrainVariant::Gqa, true, true, false, false,
                                   RopeLayout::Interleaved},
                      TrainVariant{"deepseek_qlora_latentnorm_bias", TrainVariant::DeepSeek, true},
                      TrainVariant{"deepseek_per_layer_interleaved", TrainVariant::DeepSeek, false, false, false, true,
                                   RopeLayout::Interleaved},
                      TrainVariant{"deepseek_absorbed", TrainVariant::DeepSeek, true, false, true},
                      TrainVariant{"repeat_wqr", TrainVariant::Repeat, true},
                      TrainVariant{"repeat_absorbed", TrainVariant::Repeat, false, false, true}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mlar::test
