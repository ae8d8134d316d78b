// The extend retrofit of Qwen3 sources (per-head q_norm / k_norm before RoPE;
// convert/qk_norm_fold.h):
//  - cached (exact score scales): MQA at full rank with the whole rope reproduces the
//    source; any model at full rank equals the reference forward of the source with
//    the non-kept rope removed (tests/extend/extend_fixtures.h, QkReference);
//  - calibrated (constants folded): full rank equals the same reference with the
//    constant scales, so it is a plain extend model and exports;
//  - a 50% conversion of the HF fixture runs (naive = absorbed, decode = prefill),
//    counts its key scales in the KV cache and the budget, and reloads from the MLA
//    format with identical logits; export refuses it with the reason, and the
//    calibrated conversion exports and reloads with the same logits.
#include <gtest/gtest.h>

#include <filesystem>
#include <tuple>

#include "common/hf_fixtures.h"
#include "convert/absorb.h"
#include "common/test_data.h"
#include "extend/extend_fixtures.h"
#include "io/deepseek_export.h"
#include "io/load_model.h"
#include "io/mla_model.h"
#include "train/attention_block.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using test::error_message;
using test::full_rank_options;
using test::max_abs_diff;
using test::random_ids;
using test::runtime_logits;

ModelConfig qwen3_config(int64_t n_kv, RopeLayout layout = RopeLayout::Half) {
  ModelConfig c = test::extend_config(n_kv, layout, false);
  c.arch = "qwen3";
  c.qk_norm = true;
  return c;
}

test::QkReference reference_of(const ExtendReport& rep) {
  test::QkReference r;
  r.cached = rep.qk_norm_mode == QkNormMode::Cached;
  r.tau = rep.layer_q_norm_scale;
  r.sigma = rep.layer_k_norm_scale;
  return r;
}

Tensor logits_with(const Model& m, const std::vector<int32_t>& ids, MlaEval e, DType kv = DType::F32) {
  SessionOptions so;
  so.max_tokens = static_cast<int64_t>(ids.size());
  so.mla_eval = e;
  so.kv_dtype = kv;
  Session s(m, so);
  return s.forward(ids, Logits::All);
}

TEST(Qwen3Extend, MqaFullRankWholeRopeReproducesTheSource) {
  for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved}) {
    const ModelConfig c = qwen3_config(1, layout);
    const Model src = random_model(c, 31);
    const auto calib = random_ids(800, c.vocab_size, 3);
    const auto ids = random_ids(40, c.vocab_size, 5);
    ExtendOptions o = full_rank_options(c, RopeStrategy::RoRoPE, c.head_dim, 1);
    o.qk_norm = QkNormMode::Cached;
    ExtendReport rep;
    const Model mla = convert_extend(src, o, calib, &rep);
    ASSERT_TRUE(mla.config.mla);
    EXPECT_EQ(mla.config.mla->qk_scale_dim, c.head_dim);
    EXPECT_EQ(mla.config.mla->qk_scale_kv_heads, 1);
    EXPECT_LE(max_abs_diff(runtime_logits(mla, ids), runtime_logits(src, ids)), 1e-4) << rope_layout_name(layout);
  }
}

TEST(Qwen3Extend, CachedFullRankChangesNothingButTheRemovedRope) {
  struct Case {
    RopeStrategy s;
    int64_t d_r, fold;
  };
  const Case cases[] = {{RopeStrategy::RoRoPE, 8, 1}, {RopeStrategy::RoRoPE, 4, 2}, {RopeStrategy::Uniform, 4, 1},
                        {RopeStrategy::TwoNorm, 6, 1}};
  for (int64_t n_kv : {2, 4})
    for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved}) {
      const ModelConfig c = qwen3_config(n_kv, layout);
      const Model src = random_model(c, 41 + static_cast<uint64_t>(n_kv));
      const auto calib = random_ids(800, c.vocab_size, 7);
      const auto ids = random_ids(24, c.vocab_size, 9);
      const Tensor source = runtime_logits(src, ids);
      for (const Case& k : cases) {
        ExtendOptions o = full_rank_options(c, k.s, k.d_r, k.fold);
        o.qk_norm = QkNormMode::Cached;
        ExtendReport rep;
        const Model mla = convert_extend(src, o, calib, &rep);
        const test::QkReference ref = reference_of(rep);
        const Tensor got = runtime_logits(mla, ids);
        const auto want = test::rope_removed_forward(src, rep.plans, ids, &ref);
        EXPECT_LE(max_abs_diff(got, want), 1e-4)
            << rope_strategy_name(k.s) << " d_r " << k.d_r << " n_kv " << n_kv << " " << rope_layout_name(layout);
        // The removed rope does change the model (the reference is not the source).
        EXPECT_GT(max_abs_diff(got, source), 1e-3);
        // Naive and absorbed evaluation agree with the key scales too.
        EXPECT_LE(max_abs_diff(logits_with(mla, ids, MlaEval::Naive), logits_with(mla, ids, MlaEval::Absorbed)), 1e-4);
      }
    }
}

TEST(Qwen3Extend, HfFixtureFullRankChangesNothingButTheRemovedRope) {
  const Model src = load_model(test::write_family_fixture("qwen3", 3));  // 4 heads, 2 kv heads of 16
  const auto calib = random_ids(800, src.config.vocab_size, 7);
  const auto ids = random_ids(32, src.config.vocab_size, 9);
  for (const auto& [strategy, d_r, fold] : {std::tuple{RopeStrategy::RoRoPE, 16, 1}, std::tuple{RopeStrategy::RoRoPE, 8, 2},
                                           std::tuple{RopeStrategy::Uniform, 8, 1}}) {
    ExtendOptions o = full_rank_options(src.config, strategy, d_r, fold);
    o.qk_norm = QkNormMode::Cached;
    ExtendReport rep;
    const Model mla = convert_extend(src, o, calib, &rep);
    const test::QkReference ref = reference_of(rep);
    EXPECT_LE(max_abs_diff(runtime_logits(mla, ids), test::rope_removed_forward(src, rep.plans, ids, &ref)), 1e-4)
        << "d_r " << d_r;
  }
}

TEST(Qwen3Extend, CalibratedFullRankIsTheSourceWithConstantNormScales) {
  const ModelConfig c = qwen3_config(2);
  const Model src = random_model(c, 5);
  const auto calib = random_ids(800, c.vocab_size, 7);
  const auto ids = random_ids(24, c.vocab_size, 9);
  ExtendOptions o = full_rank_options(c, RopeStrategy::RoRoPE, 4, 2);
  o.qk_norm = QkNormMode::Calibrated;
  ExtendReport rep;
  const Model mla = convert_extend(src, o, calib, &rep);
  EXPECT_EQ(mla.config.mla->qk_scale_dim, 0);
  EXPECT_EQ(rep.qk_norm_mode, QkNormMode::Calibrated);
  ASSERT_EQ(rep.layer_q_norm_scale.size(), 2u);
  EXPECT_EQ(rep.layer_q_norm_scale[0].size(), 4u);
  EXPECT_EQ(rep.layer_k_norm_scale[0].size(), 2u);
  const test::QkReference ref = reference_of(rep);
  EXPECT_LE(max_abs_diff(runtime_logits(mla, ids), test::rope_removed_forward(src, rep.plans, ids, &ref)), 1e-4);
}

TEST(Qwen3Extend, OptionsAreChecked) {
  const ModelConfig llama = test::extend_config(2);
  ExtendOptions o;
  o.calib_len = 32;
  o.kv_budget = 0.5;
  o.qk_norm = QkNormMode::Cached;
  EXPECT_CONTAINS(error_message([&] { check_extend_options(llama, o); }), "--qk-norm cached applies to models with");
  ModelConfig biased = qwen3_config(2);
  biased.attention_bias = true;
  EXPECT_CONTAINS(error_message([&] { check_extend_options(biased, o); }), "use --qk-norm calibrated");
  o.qk_norm = QkNormMode::Calibrated;
  EXPECT_NO_THROW(check_extend_options(biased, o));
  // auto: calibrated with the calibrated latent norm (the exportable conversions).
  ExtendOptions a;
  EXPECT_EQ(resolve_qk_norm(a), QkNormMode::Cached);
  a.latent_norm = LatentNorm::Calibrated;
  EXPECT_EQ(resolve_qk_norm(a), QkNormMode::Calibrated);
}

// The HF fixture at a 50% budget.
struct Half {
  Model src, mla;
  ExtendReport rep;
};

const Half& half_cached() {
  static const Half h = [] {
    Half x;
    x.src = load_model(test::write_family_fixture("qwen3", 3));
    ExtendOptions o;
    o.calib_len = 32;
    o.kv_budget = 0.5;
    o.qk_rope_dim = 8;
    o.attn_key_balance = 0.1;
    o.qk_norm = QkNormMode::Cached;
    o.progress = false;
    x.mla = convert_extend(x.src, o, random_ids(1200, x.src.config.vocab_size, 11), &x.rep);
    return x;
  }();
  return h;
}

TEST(Qwen3Extend, HalfBudgetCountsTheKeyScalesAndReloads) {
  const Half& h = half_cached();
  const ModelConfig& c = h.src.config;  // 2 kv heads of 16: GQA caches 64 values per layer
  const MlaConfig& m = *h.mla.config.mla;
  EXPECT_EQ(m.qk_scale_kv_heads, 2);
  EXPECT_EQ(m.kv_lora_rank, 32 - 8 - 2);  // the budget of 32 holds d_r 8 and the 2 key scales
  for (int64_t l = 0; l < c.num_layers; ++l) EXPECT_EQ(h.mla.config.kv_values_per_token_layer(l), 32);
  EXPECT_EQ(Session(h.mla).cache().bytes_per_token() * 2, Session(h.src).cache().bytes_per_token());
  EXPECT_EQ(h.rep.kv_bytes_after() * 2, h.rep.kv_bytes_before());

  const auto ids = random_ids(40, c.vocab_size, 13);
  const Tensor got = logits_with(h.mla, ids, MlaEval::Auto);
  EXPECT_LE(max_abs_diff(logits_with(h.mla, ids, MlaEval::Naive), logits_with(h.mla, ids, MlaEval::Absorbed)), 1e-4);
  // Decode token by token (absorbed, key scales read from a bf16 cache) against prefill.
  {
    SessionOptions so;
    so.kv_dtype = DType::BF16;
    Session s(h.mla, so);
    const int64_t V = c.vocab_size;
    double diff = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      const Tensor& row = s.decode(ids[i]);
      for (int64_t k = 0; k < V; ++k)
        diff = std::max(diff, std::abs(double(row.data[k]) - double(got.data[i * V + k])));
    }
    EXPECT_LE(diff, 0.05);  // bf16 cache rows
  }

  // Stored absorption and training refuse the scales with the reason.
  Model copy = h.mla;
  EXPECT_CONTAINS(error_message([&] { absorb(copy); }), "score scales");
  EXPECT_CONTAINS(error_message([&] { train::make_attention_block(h.mla.config, 0, h.mla.weights.layers[0]); }),
                  "--qk-norm calibrated to fine-tune");

  const std::string dir = test::temp_dir("qwen3-extend") + "/mla";
  fs::create_directory(dir);
  write_mla_model(h.mla, dir);
  const Model back = load_model(dir);
  ASSERT_TRUE(back.config.mla);
  EXPECT_EQ(back.config.mla->qk_scale_dim, 16);
  EXPECT_EQ(back.config.mla->qk_scale_kv_heads, 2);
  EXPECT_EQ(max_abs_diff(runtime_logits(back, ids), runtime_logits(h.mla, ids)), 0.0);
}

TEST(Qwen3Extend, ExportRefusesTheScalesAndTakesTheCalibratedModel) {
  const Half& h = half_cached();
  for (DeepseekFormat f : {DeepseekFormat::HfDeepseekV3, DeepseekFormat::GgufDeepseek2}) {
    const std::string msg = error_message([&] { plan_deepseek_layout(h.mla, f); });
    EXPECT_CONTAINS(msg, "per-head q/k norms as score scales");
    EXPECT_CONTAINS(msg, "--qk-norm calibrated");
  }
  Model g = h.src;
  ExtendOptions o;
  o.calib_len = 32;
  o.kv_budget = 0.5;
  o.qk_rope_dim = 8;
  o.attn_key_balance = 0.1;
  o.latent_norm = LatentNorm::Calibrated;  // auto -> calibrated
  o.progress = false;
  ExtendReport rep;
  const Model cal = convert_extend(g, o, random_ids(1200, g.config.vocab_size, 11), &rep);
  EXPECT_EQ(rep.qk_norm_mode, QkNormMode::Calibrated);
  EXPECT_EQ(cal.config.mla->kv_lora_rank, 32 - 8);
  const std::string dir = test::temp_dir("qwen3-extend-export") + "/ds";
  export_deepseek(cal, DeepseekFormat::HfDeepseekV3, dir);
  const Model back = load_model(dir);
  const auto ids = random_ids(40, g.config.vocab_size, 13);
  EXPECT_LE(max_abs_diff(runtime_logits(back, ids), runtime_logits(cal, ids)), 1e-4);
}

// Measured, not asserted beyond sanity: |dlogit| against the source of both modes at
// full rank, 50% and 25% of the cache (random weights: perplexity means nothing here).
// "same r": cached at the latent rank of the calibrated conversion (its key scales on
// top of the budget), to separate the scales' effect from the rank they cost.
TEST(Qwen3Extend, CachedAndCalibratedAgainstTheSource) {
  const Model src = load_model(test::write_family_fixture("qwen3", 3));
  const auto calib = random_ids(1200, src.config.vocab_size, 11);
  const auto ids = random_ids(64, src.config.vocab_size, 17);
  const Tensor want = runtime_logits(src, ids);
  const int64_t Z = 2 * src.config.kv_dim();
  struct Row {
    const char* name;
    double budget;
    QkNormMode mode;
    bool same_r;
  };
  const Row rows[] = {{"full rank", 1.0, QkNormMode::Cached, false},  {"full rank", 1.0, QkNormMode::Calibrated, false},
                      {"50%", 0.5, QkNormMode::Cached, false},        {"50% same r", 0.5, QkNormMode::Cached, true},
                      {"50%", 0.5, QkNormMode::Calibrated, false},    {"25%", 0.25, QkNormMode::Cached, false},
                      {"25% same r", 0.25, QkNormMode::Cached, true}, {"25%", 0.25, QkNormMode::Calibrated, false}};
  for (const Row& row : rows) {
    ExtendOptions o;
    o.calib_len = 32;
    o.qk_rope_dim = row.budget <= 0.25 ? 4 : 8;
    const int64_t values = static_cast<int64_t>(std::llround(row.budget * static_cast<double>(Z)));
    if (row.budget < 1 && !row.same_r) o.kv_budget = row.budget;
    else o.kv_lora_rank = row.budget < 1 ? values - o.qk_rope_dim : Z;
    o.attn_key_balance = 0.1;
    o.qk_norm = row.mode;
    o.progress = false;
    const Model m = convert_extend(src, o, calib);
    const Tensor got = runtime_logits(m, ids);
    double mean = 0;
    for (size_t i = 0; i < got.data.size(); ++i) mean += std::abs(double(got.data[i]) - double(want.data[i]));
    mean /= static_cast<double>(got.data.size());
    const double mx = max_abs_diff(got, want);
    std::printf("[qwen3 extend] %-11s --qk-norm %-10s r %2lld  KV %3lld/%lld values  |dlogit| max %7.4f mean %.4f "
                "(logit scale %.2f)\n",
                row.name, qk_norm_mode_name(row.mode), static_cast<long long>(m.config.mla->kv_lora_rank),
                static_cast<long long>(m.config.kv_values_per_token_layer(0)), static_cast<long long>(Z), mx, mean,
                test::max_abs(want));
    EXPECT_LT(mx, test::max_abs(want));
  }
}

// The GPU runs no per-head score scales: --device cuda takes the calibrated form and refuses the cached
// one (auto resolves to cached without the latent norm) before any work, naming the way out.
TEST(Qwen3Extend, CudaRefusesTheCachedScales) {
  const ModelConfig c = qwen3_config(2);
  ExtendOptions o;
  o.calib_len = 32;
  o.kv_budget = 0.5;
  o.device = Device::Cuda;
  for (QkNormMode m : {QkNormMode::Auto, QkNormMode::Cached}) {
    o.qk_norm = m;
    const std::string e = error_message([&] { check_extend_options(c, o); });
    EXPECT_NE(e.find("--qk-norm calibrated"), std::string::npos) << e;
  }
  o.qk_norm = QkNormMode::Calibrated;
  EXPECT_NO_THROW(check_extend_options(c, o));
  o.qk_norm = QkNormMode::Auto;
  o.latent_norm = LatentNorm::Calibrated;  // auto is calibrated with the latent norm
  EXPECT_NO_THROW(check_extend_options(c, o));
}

}  // namespace
}  // namespace mlar
