// Removing the query bias of Qwen2 conversions (convert/query_bias.h): the fold's
// residual against its closed form, fold against drop where the attention input has
// a strong mean direction, and a Qwen2 HF fixture through extend + export
// (deepseek-v3) reloading with the converted model's logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "common/hf_fixtures.h"
#include "common/test_data.h"
#include "convert/extend.h"
#include "convert/query_bias.h"
#include "export/export_models.h"
#include "io/deepseek_export.h"
#include "io/load_model.h"
#include "io/mla_model.h"
#include "runtime/random_model.h"

namespace mlar {
namespace {

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> pick(3, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = pick(rng);
  return ids;
}

// S = E[[x;1][x;1]^T] of x = mu + noise (n samples).
la::Mat moment_of(const std::vector<std::vector<double>>& xs) {
  const int64_t D = static_cast<int64_t>(xs.front().size());
  la::Mat S(D + 1, D + 1);
  for (const auto& x0 : xs) {
    std::vector<double> x = x0;
    x.push_back(1.0);
    for (int64_t i = 0; i <= D; ++i)
      for (int64_t j = 0; j <= D; ++j) S(i, j) += x[static_cast<size_t>(i)] * x[static_cast<size_t>(j)];
  }
  for (double& v : S.a) v /= static_cast<double>(xs.size());
  return S;
}

TEST(QueryBiasFold, ResidualMatchesClosedFormAndOrdersTheConstructions) {
  const int64_t D = 6, n = 4000;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> N(0, 1);
  std::vector<double> mu = {2.0, -1.0, 0.5, 0, 1.5, -0.5};
  std::vector<std::vector<double>> xs;
  for (int64_t t = 0; t < n; ++t) {
    std::vector<double> x(static_cast<size_t>(D));
    for (int64_t i = 0; i < D; ++i) x[static_cast<size_t>(i)] = mu[static_cast<size_t>(i)] + 0.7 * N(rng);
    xs.push_back(x);
  }
  const la::Mat S = moment_of(xs);
  const auto fold = bias_fold_direction(S, QueryBias::Fold, 0.0);
  const auto mean = bias_fold_direction(S, QueryBias::Mean);
  const auto drop = bias_fold_direction(S, QueryBias::Drop);
  // Closed form of the least-squares residual: 1 - m^T S_xx^-1 m = 1 - m^T u.
  double mu_u = 0;
  for (int64_t i = 0; i < D; ++i) mu_u += S(i, D) * fold[static_cast<size_t>(i)];
  const double r_fold = bias_residual(S, fold), r_mean = bias_residual(S, mean), r_drop = bias_residual(S, drop);
  EXPECT_NEAR(r_fold, 1 - mu_u, 1e-9);
  // The residual measured directly on the samples.
  double direct = 0;
  for (const auto& x : xs) {
    double ux = 0;
    for (int64_t i = 0; i < D; ++i) ux += fold[static_cast<size_t>(i)] * x[static_cast<size_t>(i)];
    direct += (ux - 1) * (ux - 1) / static_cast<double>(n);
  }
  EXPECT_NEAR(r_fold, direct, 1e-9);
  EXPECT_NEAR(r_drop, 1.0, 1e-12);
  // |mu|^2 = 7.75 against noise 0.49 per coordinate: the fold leaves about
  // 1 / (1 + |mu|^2 / 0.49) = 0.06 of the bias, the mean direction more.
  EXPECT_LT(r_fold, 0.08);
  EXPECT_LT(r_fold, r_mean);
  EXPECT_LT(r_mean, r_drop);
}

// A Qwen2-shaped random model whose hidden states have a strong mean direction
// (every embedding row shares a mean vector), with query biases large enough to
// matter.
Model biased_mean_model() {
  ModelConfig c = test::family_config("qwen2");
  c.tie_word_embeddings = false;  // logits of a few units whatever the embedding's mean
  Model m = random_model(c, 11);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> N(0, 1);
  const int64_t V = c.vocab_size, D = c.hidden_size;
  std::vector<double> mu(static_cast<size_t>(D));
  for (double& v : mu) v = 3.0 * N(rng);
  float* e = m.weights.embed.ptr();
  for (int64_t t = 0; t < V; ++t)
    for (int64_t i = 0; i < D; ++i) e[t * D + i] += static_cast<float>(mu[static_cast<size_t>(i)]);
  for (auto& L : m.weights.layers) {
    float* b = L.bq.ptr();
    for (int64_t i = 0; i < L.bq.numel(); ++i) b[i] *= 20.0f;  // N(0, 2^2)
  }
  return m;
}

ExtendOptions qwen_options(QueryBias qb) {
  ExtendOptions o;
  o.calib_len = 32;
  o.kv_budget = 0.5;
  o.qk_rope_dim = 4;
  o.freqfold = 1;
  o.kv_method = KvMethod::Pca;
  o.latent_norm = LatentNorm::Calibrated;
  o.query_bias = qb;
  o.progress = false;
  return o;
}

TEST(QueryBiasFold, FoldBeatsDropWhereTheInputHasAMeanDirection) {
  const Model src = biased_mean_model();
  const auto calib = random_ids(31 * 60, src.config.vocab_size, 9);
  ExtendReport fold_rep, drop_rep, mean_rep;
  convert_extend(src, qwen_options(QueryBias::Fold), calib, &fold_rep);
  convert_extend(src, qwen_options(QueryBias::Drop), calib, &drop_rep);
  convert_extend(src, qwen_options(QueryBias::Mean), calib, &mean_rep);
  ASSERT_FALSE(fold_rep.query_bias.empty());
  ASSERT_FALSE(drop_rep.query_bias.empty());
  for (size_t l = 0; l < fold_rep.layer_query_bias_residual.size(); ++l) {
    EXPECT_NEAR(drop_rep.layer_query_bias_residual[l], 1.0, 1e-9);
    EXPECT_LT(fold_rep.layer_query_bias_residual[l], 0.25) << "layer " << l;
    EXPECT_LE(fold_rep.layer_query_bias_residual[l], mean_rep.layer_query_bias_residual[l] + 1e-9) << "layer " << l;
  }
  const auto& f = fold_rep.query_bias;
  const auto& d = drop_rep.query_bias;
  // Measured: drop 0.30, mean 0.012, fold 0.0089 (max |dlogit|); perplexity moves
  // 0.47 with drop, 3e-4 with fold.
  EXPECT_GT(d.max_abs_logit_diff, 0.1);
  EXPECT_LT(f.max_abs_logit_diff, 0.5 * d.max_abs_logit_diff);
  EXPECT_LT(std::abs(std::log(f.ppl / f.ppl_kept)), 0.5 * std::abs(std::log(d.ppl / d.ppl_kept)));
  std::printf("fold: max|dlogit| %.4g ppl %.4f (kept %.4f); mean: %.4g %.4f (%.4f); drop: %.4g %.4f (%.4f)\n",
              f.max_abs_logit_diff, f.ppl, f.ppl_kept, mean_rep.query_bias.max_abs_logit_diff, mean_rep.query_bias.ppl,
              mean_rep.query_bias.ppl_kept, d.max_abs_logit_diff, d.ppl, d.ppl_kept);
  EXPECT_GT(f.tokens, 0);
}

TEST(QueryBiasFold, KeepLeavesTheBiasAndMeasuresNothing) {
  const Model src = biased_mean_model();
  const auto calib = random_ids(31 * 20, src.config.vocab_size, 9);
  ExtendReport rep;
  const Model m = convert_extend(src, qwen_options(QueryBias::Keep), calib, &rep);
  EXPECT_TRUE(rep.query_bias.empty());
  EXPECT_TRUE(any_nonzero(m.weights.layers[0].mla.bq));
  // export refuses it, naming the option that removes it.
  const std::string msg = test::error_of([&] { plan_deepseek_layout(m, DeepseekFormat::HfDeepseekV3); });
  EXPECT_HAS(msg, "query bias");
  EXPECT_HAS(msg, "--query-bias fold");
}

// The Qwen2 HF fixture (q/k/v biases, tied embeddings) through extend (default
// query-bias mode with a calibrated latent norm: fold), the MLA format, and export
// to DeepSeek-V3: the export reloads with the converted model's logits.
TEST(QueryBiasFold, Qwen2FixtureExportsAndReloadsWithTheLogits) {
  const std::string dir = test::write_family_fixture("qwen2", 4);
  const Model src = load_model(dir);
  ASSERT_TRUE(src.config.attention_bias);
  ExtendOptions o = qwen_options(QueryBias::Auto);
  const auto calib = random_ids(31 * 30, src.config.vocab_size, 2);
  ExtendReport rep;
  Model conv = convert_extend(src, o, calib, &rep);
  EXPECT_EQ(rep.query_bias_mode, QueryBias::Fold);
  ASSERT_FALSE(rep.query_bias.empty());
  EXPECT_EQ(rep.query_bias.mode, "fold");
  EXPECT_GT(rep.query_bias.tokens, 0);
  EXPECT_TRUE(std::isfinite(rep.query_bias.max_abs_logit_diff));
  for (const auto& L : conv.weights.layers) EXPECT_TRUE(L.mla.bq.empty());
  EXPECT_TRUE(any_nonzero(conv.weights.layers[0].mla.b_dkv));  // K/V biases stay in the latent

  // Through the MLA format (what `convert` writes): the record survives.
  const std::string mla_dir = test::temp_dir("qbias-mla") + "/mla";
  std::filesystem::create_directory(mla_dir);
  write_mla_model(conv, mla_dir);
  const Model mla = load_model(mla_dir);
  ASSERT_EQ(mla.config.mla->query_bias.mode, "fold");
  EXPECT_DOUBLE_EQ(mla.config.mla->query_bias.max_abs_logit_diff, rep.query_bias.max_abs_logit_diff);
  test::expect_same_logits(conv, mla, 1e-5);

  const std::string out = test::temp_dir("qbias-ds") + "/ds";
  const auto notes = export_deepseek(load_model(mla_dir), DeepseekFormat::HfDeepseekV3, out);
  bool named = false;
  for (const auto& n : notes) named = named || (n.find("query bias folded") != std::string::npos &&
                                                n.find("max |dlogit|") != std::string::npos);
  EXPECT_TRUE(named);
  const Model back = load_model(out);
  test::expect_same_logits(conv, back, 1e-4);
  // GGUF deepseek2 has no bias tensors at all: the latent / rope-key biases of a
  // Qwen2 source are still refused there.
  EXPECT_HAS(test::error_of([&] { plan_deepseek_layout(mla, DeepseekFormat::GgufDeepseek2); }), "bias");
}

// fold_kv_bias (what --target vllm|sglang|llama.cpp and --format gguf set): the latent
// and rope-key biases are folded by the same least squares; the model then exports to
// GGUF deepseek2 and reloads with its logits, and stays close to the bias-keeping one.
TEST(QueryBiasFold, KvBiasFoldMakesQwen2ExportableToGguf) {
  const std::string dir = test::write_family_fixture("qwen2", 4);
  const Model src = load_model(dir);
  const auto calib = random_ids(31 * 30, src.config.vocab_size, 2);
  ExtendOptions o = qwen_options(QueryBias::Auto);
  ExtendReport kept_rep;
  const Model kept = convert_extend(src, o, calib, &kept_rep);
  o.fold_kv_bias = true;
  ExtendReport rep;
  const Model conv = convert_extend(src, o, calib, &rep);
  ASSERT_EQ(rep.layer_kv_bias_residual.size(), static_cast<size_t>(src.config.num_layers));
  for (double r : rep.layer_kv_bias_residual) {
    EXPECT_GT(r, 0.0);
    EXPECT_LE(r, 1.0);
  }
  for (const auto& L : conv.weights.layers) {
    EXPECT_TRUE(L.mla.b_dkv.empty());
    EXPECT_TRUE(L.mla.b_kr.empty());
  }
  const std::string out = test::temp_dir("qbias-gguf") + "/m.gguf";
  export_deepseek(conv, DeepseekFormat::GgufDeepseek2, out);
  test::expect_same_logits(conv, load_model(out), 1e-4);
  // The fold moves the logits by less than dropping the biases would.
  Model dropped = kept;
  for (auto& L : dropped.weights.layers) L.mla.b_dkv = TypedTensor{}, L.mla.b_kr = TypedTensor{};
  const auto ids = random_ids(24, src.config.vocab_size, 8);
  const Tensor lk = test::all_logits(kept, ids), lf = test::all_logits(conv, ids), ld = test::all_logits(dropped, ids);
  EXPECT_LT(test::max_abs_diff(lk, lf), test::max_abs_diff(lk, ld));
}

}  // namespace
}  // namespace mlar
