// Naive and absorbed evaluation agree to rounding, in prefill and in decode; prefill
// then decode equals one pass; the choice of evaluation is checked.
#include <gtest/gtest.h>

#include "mla_test_models.h"
#include "runtime/decoder.h"
#include "runtime/random_model.h"
#include "runtime/session.h"
#include "runtime/test_models.h"
#include "util/error.h"

namespace mlar {
namespace {

using test::MlaVariant;

std::vector<MlaVariant> variants() {
  return {
      {.name = "deepseek", .latent_norm = true},
      {.name = "deepseek_qlora_bias", .q_lora = true, .bias = true, .latent_norm = true},
      {.name = "deepseek_per_layer", .bias = true, .per_layer = true, .layout = RopeLayout::Interleaved},
      {.name = "repeat", .repeat = true, .bias = true},
      {.name = "repeat_per_layer", .repeat = true, .per_layer = true, .rank = 14},
  };
}

class MlaEvalAgree : public ::testing::TestWithParam<MlaVariant> {};

// 40 tokens: the prefill runs the blocked (sgemm) attention paths, and the decode
// steps after it the long-cache ones.
TEST_P(MlaEvalAgree, NaiveAndAbsorbedPrefill) {
  const Model m = random_mla_model(test::mla_config(GetParam()), 21);
  const auto ids = test::mla_random_ids(40, m.config.vocab_size, 1);
  Session naive(m, {.mla_eval = MlaEval::Naive}), absorbed(m, {.mla_eval = MlaEval::Absorbed});
  const Tensor a = naive.forward(ids, Logits::All);
  const Tensor b = absorbed.forward(ids, Logits::All);
  EXPECT_LE(test::max_rel_diff(b, a), 1e-5);
  // Short batches (decode kernel of the absorbed path) too.
  naive.reset();
  absorbed.reset();
  const std::span<const int32_t> head(ids.data(), 5);
  EXPECT_LE(test::max_rel_diff(absorbed.forward(head, Logits::All), naive.forward(head, Logits::All)), 1e-5);
}

TEST_P(MlaEvalAgree, NaiveAndAbsorbedDecode) {
  const Model m = random_mla_model(test::mla_config(GetParam()), 22);
  const auto ids = test::mla_random_ids(60, m.config.vocab_size, 2);
  Session naive(m, {.mla_eval = MlaEval::Naive}), absorbed(m, {.mla_eval = MlaEval::Absorbed});
  const std::span<const int32_t> prompt(ids.data(), 20);
  naive.prefill(prompt);
  absorbed.prefill(prompt);
  double worst = 0;
  for (size_t i = 20; i < ids.size(); ++i) {
    const Tensor a = naive.decode(ids[i]);
    worst = std::max(worst, test::max_rel_diff(absorbed.decode(ids[i]), a));
  }
  EXPECT_LE(worst, 1e-5);
}

TEST_P(MlaEvalAgree, PrefillThenDecodeEqualsOnePass) {
  const Model m = random_mla_model(test::mla_config(GetParam()), 23);
  const auto ids = test::mla_random_ids(36, m.config.vocab_size, 3);
  for (MlaEval e : {MlaEval::Auto, MlaEval::Naive, MlaEval::Absorbed}) {
    Session all(m, {.mla_eval = e});
    const Tensor ref = all.forward(ids, Logits::All);
    Session parts(m, {.mla_eval = e});
    parts.forward(std::span<const int32_t>(ids.data(), 18), Logits::All);  // prefill
    parts.forward(std::span<const int32_t>(ids.data() + 18, 6), Logits::All);  // a short chunk
    const int64_t V = m.config.vocab_size;
    for (size_t i = 24; i < ids.size(); ++i) {
      const Tensor& l = parts.decode(ids[i]);
      double diff = 0, scale = 0;
      for (int64_t k = 0; k < V; ++k) {
        diff = std::max(diff, double(std::abs(l.data[size_t(k)] - ref.data[size_t(int64_t(i) * V + k)])));
        scale = std::max(scale, double(std::abs(ref.data[size_t(int64_t(i) * V + k)])));
      }
      EXPECT_LE(diff / scale, 1e-5) << mla_eval_name(e) << " position " << i;
    }
  }
}

// Auto runs a long prompt naively and the decode steps after it absorbed.
TEST_P(MlaEvalAgree, AutoMixesEvaluations) {
  const Model m = random_mla_model(test::mla_config(GetParam()), 24);
  const auto ids = test::mla_random_ids(80, m.config.vocab_size, 4);
  Session autos(m), naive(m, {.mla_eval = MlaEval::Naive});
  const std::span<const int32_t> prompt(ids.data(), 70);
  EXPECT_LE(test::max_rel_diff(autos.forward(prompt, Logits::All), naive.forward(prompt, Logits::All)), 1e-5);
  for (size_t i = 70; i < ids.size(); ++i) {
    const Tensor a = naive.decode(ids[i]);
    EXPECT_LE(test::max_rel_diff(autos.decode(ids[i]), a), 1e-5) << "position " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, MlaEvalAgree, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name; });

TEST(MlaEval, NamesRoundTrip) {
  for (MlaEval e : {MlaEval::Auto, MlaEval::Naive, MlaEval::Absorbed})
    EXPECT_EQ(mla_eval_from_name(mla_eval_name(e)), e);
  EXPECT_FALSE(mla_eval_from_name("fast").has_value());
}

TEST(MlaEval, DecoderBuildsMlaLayersOfTheChosenKind) {
  const Model m = random_mla_model(test::mla_config({.name = "x", .per_layer = true}), 1);
  const Decoder d(m, MlaEval::Naive);
  ASSERT_EQ(d.n_layers(), 2);
  EXPECT_EQ(d.attention(0).kind(), "mla-naive");
  const auto* layer1 = dynamic_cast<const MlaAttention*>(&d.attention(1));
  ASSERT_NE(layer1, nullptr);
  EXPECT_EQ(layer1->rank(), 14);
  EXPECT_EQ(Decoder(m).attention(0).kind(), "mla-auto");
  EXPECT_EQ(Decoder(m, MlaEval::Absorbed).attention(1).kind(), "mla-absorbed");
}

TEST(MlaEval, AutoPicksAbsorbedForDecode) {
  const Model m = random_mla_model(test::mla_config({.name = "x"}), 1);
  const MlaAttention a(m.config, 0, m.weights.layers[0].mla);
  EXPECT_EQ(a.evaluation(1, 0), MlaEval::Absorbed);
  EXPECT_EQ(a.evaluation(1, 1000), MlaEval::Absorbed);
  EXPECT_EQ(a.evaluation(64, 0), MlaEval::Naive);  // prefill from an empty cache
  EXPECT_EQ(a.evaluation(1000, 1000), MlaEval::Naive);
  EXPECT_EQ(a.evaluation(16, 0), MlaEval::Absorbed);     // short prompt
  EXPECT_EQ(a.evaluation(256, 1000), MlaEval::Absorbed);  // chunk after a longer cache
  const MlaAttention naive(m.config, 0, m.weights.layers[0].mla, MlaEval::Naive);
  EXPECT_EQ(naive.evaluation(1, 1000), MlaEval::Naive);
  // Stored absorption has nothing to expand: always the absorbed form.
  const Model ab = random_mla_model(test::mla_config({.name = "x", .absorbed = true}), 1);
  const MlaAttention s(ab.config, 0, ab.weights.layers[0].mla, MlaEval::Naive);
  EXPECT_EQ(s.evaluation(64, 0), MlaEval::Absorbed);
  EXPECT_EQ(s.kind(), "mla-stored-absorbed");
}

TEST(MlaEval, AbsorbedRepeatSkipsTheZeroNopeQuery) {
  // `--absorb` of a repeat model leaves all-zero NoPE query rows (d_n = 0): keys are k_pe alone.
  const Model m = random_mla_model(test::mla_config({.name = "x", .repeat = true, .bias = true}), 3);
  const Model ab = test::absorb_by_hand(m);
  EXPECT_FALSE(MlaAttention(ab.config, 0, ab.weights.layers[0].mla).nope_scores());
  const Model dense = random_mla_model(test::mla_config({.name = "x", .repeat = true, .absorbed = true}), 3);
  EXPECT_TRUE(MlaAttention(dense.config, 0, dense.weights.layers[0].mla).nope_scores());
  EXPECT_TRUE(MlaAttention(m.config, 0, m.weights.layers[0].mla).nope_scores() == false);  // d_n = 0
}

TEST(MlaEval, GqaModelRefusesAnMlaEvaluation) {
  const Model g = random_model(test::small_config(), 1);
  EXPECT_THROW(Session(g, {.mla_eval = MlaEval::Naive}), Error);
  EXPECT_THROW(Decoder(g, MlaEval::Absorbed), Error);
  EXPECT_EQ(Decoder(g).attention(0).kind(), "gqa");
}

TEST(MlaEval, RandomModelRefusesAnMlaConfig) {
  EXPECT_THROW(random_model(test::mla_config({.name = "x"}), 1), Error);
}

}  // namespace
}  // namespace mlar
