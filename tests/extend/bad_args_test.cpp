// Bad arguments to the extend retrofit give clear errors before any work, through
// the library and through `mla-retrofit convert --rope-mode extend`.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_data.h"
#include "extend/extend_cli_util.h"
#include "extend/extend_fixtures.h"

namespace mlar {
namespace {

using test::error_message;
using test::extend_config;
using test::random_ids;

struct BadArgs : ::testing::Test {
  ModelConfig c = extend_config(2);  // n_kv 2, d 8: the latent width 2 n_kv d is 32
  Model src = random_model(c, 1);
  std::vector<int32_t> calib = random_ids(600, c.vocab_size, 2);
  ExtendOptions base() const {
    ExtendOptions o;
    o.calib_len = 32;
    o.kv_budget = 0.5;
    o.progress = false;
    return o;
  }
  std::string error_of(const ExtendOptions& o) const {
    return error_message([&] { convert_extend(src, o, calib); });
  }
};

TEST_F(BadArgs, RankLargerThanTheWidth) {
  ExtendOptions o = base();
  o.kv_budget = 0;
  o.kv_lora_rank = 33;
  o.qk_rope_dim = 4;
  const std::string m = error_of(o);
  EXPECT_CONTAINS(m, "--kv-lora-rank 33 must be in [1, 32]");
  EXPECT_CONTAINS(m, "2 * n_kv * d = 2 * 2 * 8 = 32");
  o.kv_lora_rank = -1;
  EXPECT_CONTAINS(error_of(o), "--kv-lora-rank -1 must be in [1, 32]");
}

TEST_F(BadArgs, RopeDimOddOrNotDividingTheHead) {
  ExtendOptions o = base();
  o.qk_rope_dim = 3;
  EXPECT_CONTAINS(error_of(o), "--qk-rope-dim 3: the rope key holds (re, im) pairs, so it must be positive and even");
  o.qk_rope_dim = 10;
  EXPECT_CONTAINS(error_of(o), "--qk-rope-dim 10 exceeds the source head size 8");
  o.qk_rope_dim = 6;
  o.rope_strategy = RopeStrategy::RoRoPE;
  EXPECT_CONTAINS(error_of(o), "--qk-rope-dim 6 does not divide the head size 8");
  o.rope_strategy = RopeStrategy::High;  // partial strategies take any even d_r <= d
  o.progress = false;
  EXPECT_NO_THROW(convert_extend(src, o, calib));
}

TEST_F(BadArgs, FreqfoldMustFitTheStrategy) {
  ExtendOptions o = base();
  o.qk_rope_dim = 4;
  o.rope_strategy = RopeStrategy::High;
  o.freqfold = 2;
  EXPECT_CONTAINS(error_of(o), "--freqfold 2 applies to --rope-strategy rorope only (got high)");
  o.rope_strategy = RopeStrategy::RoRoPE;
  o.freqfold = 1;  // d_r 4 of 8 keeps every 2nd frequency group: F must be a multiple of 2
  EXPECT_CONTAINS(error_of(o), "--freqfold 1 with --qk-rope-dim 4 (head size 8): rorope needs a multiple of 2 that divides 4");
}

TEST_F(BadArgs, BudgetOutsideZeroOne) {
  for (double b : {1.0, 1.5, -0.25}) {
    ExtendOptions o = base();
    o.kv_budget = b;
    EXPECT_CONTAINS(error_of(o), "must be in (0, 1): the fraction of the GQA cache (2 * n_kv * d = 32 values per layer)");
  }
  ExtendOptions o = base();
  o.kv_budget = 0.05;  // 2 values per layer: no room for a rope pair and a latent
  EXPECT_CONTAINS(error_of(o), "--kv-budget 0.05 leaves 2 cached values per layer");
  o.kv_budget = 0;
  EXPECT_CONTAINS(error_of(o), "needs the size of the cache: --kv-budget F");
  o.kv_budget = 0.5;
  o.kv_lora_rank = 8;
  EXPECT_CONTAINS(error_of(o), "give either --kv-budget or --kv-lora-rank, not both");
  o.kv_lora_rank = 0;
  o.qk_rope_dim = 16;  // 16 of a budget of 16 leaves no latent (and exceeds d)
  EXPECT_CONTAINS(error_of(o), "--qk-rope-dim 16");
}

TEST_F(BadArgs, CalibrationShorterThanOneWindow) {
  ExtendOptions o = base();
  o.qk_rope_dim = 4;
  o.attn_key_balance = 0.1;  // nothing to choose: no held-out part
  const auto shortids = random_ids(20, c.vocab_size, 3);
  EXPECT_CONTAINS(error_message([&] { convert_extend(src, o, shortids); }),
                  "calibration text: 20 tokens, fewer than one calibration window of --calib-len 32 (31 tokens after BOS)");
  o.qk_rope_dim = 0;  // choosing d_r needs a held-out part as well
  const auto few = random_ids(40, c.vocab_size, 3);
  EXPECT_CONTAINS(error_message([&] { convert_extend(src, o, few); }), "too few to hold out");
  o.calib_len = 1;
  EXPECT_CONTAINS(error_of(o), "--calib-len 1 must be at least 2");
  o.calib_len = 65;
  EXPECT_CONTAINS(error_of(o), "--calib-len 65 exceeds the model's maximum context of 64");
  o.calib_len = 32;
  o.calib_tokens = 10;
  EXPECT_CONTAINS(error_of(o), "--calib-tokens 10 is less than one window of --calib-len 32");
}

TEST_F(BadArgs, OtherOptions) {
  ExtendOptions o = base();
  o.q_lora_rank = 33;  // hidden size 32
  EXPECT_CONTAINS(error_of(o), "--q-lora-rank 33 must be in [0, 32]");
  o = base();
  o.attn_key_balance = -1;
  EXPECT_CONTAINS(error_of(o), "--attn-key-balance -1 must be positive");
  o = base();
  o.holdout = 1;
  EXPECT_CONTAINS(error_of(o), "held-out fraction 1 must be in (0, 1)");
  ExtendOptions fine = base();
  fine.qk_rope_dim = 4;
  fine.attn_key_balance = 0.1;
  const Model mla = convert_extend(src, fine, calib);
  EXPECT_CONTAINS(error_message([&] { convert_extend(mla, fine, calib); }), "already MLA (rope mode extend)");
}

TEST(ExtendCliBadArgs, RefusedClearlyWithoutOutput) {
  const std::string model = test::data_path("models/stories260K/stories260K.bin");
  const std::string tok = test::data_path("models/stories260K/tok512.model");
  const std::string calib = test::data_path("text/tinystories-calib.txt");
  const std::string out = test::temp_dir("extend-bad") + "/mla";
  const std::string base = "convert " + test::quote(model) + " --tokenizer " + test::quote(tok) + " --out " +
                           test::quote(out) + " --rope-mode extend";
  struct Case {
    std::string args, want;
  };
  const Case cases[] = {
      {"", "--rope-mode extend needs calibration text: --calib FILE"},
      {" --calib " + test::quote(calib) + " --kv-budget 1.2", "--kv-budget 1.2 must be in (0, 1)"},
      {" --calib " + test::quote(calib) + " --kv-lora-rank 65 --qk-rope-dim 4", "--kv-lora-rank 65 must be in [1, 64]"},
      {" --calib " + test::quote(calib) + " --kv-budget 0.5 --qk-rope-dim 5", "--qk-rope-dim 5: the rope key holds"},
      {" --calib " + test::quote(calib) + " --kv-budget 0.5 --rope-strategy rorope --qk-rope-dim 6",
       "--qk-rope-dim 6 does not divide the head size 8"},
      {" --calib " + test::quote(calib) + " --kv-budget 0.5 --rope-strategy spiral", "--rope-strategy spiral is unknown"},
      {" --calib " + test::quote(calib) + " --kv-budget 0.5 --kv-method magic", "--kv-method magic is unknown"},
      {" --calib " + test::quote(calib) + " --kv-budget 0.5 --freqfold x", "--freqfold x: expected a positive integer or auto"},
      {" --calib " + test::quote(calib) + " --kv-budget 0.5 --num-kv-heads 2", "--num-kv-heads / --head-dim apply to --rope-mode repeat"},
      {" --calib /nonexistent/calib.txt --kv-budget 0.5", "/nonexistent/calib.txt"},
  };
  for (const Case& k : cases) {
    const auto r = test::run_extend_cli(base + k.args);
    EXPECT_EQ(r.status, 1) << k.args << "\n" << r.err;
    EXPECT_CONTAINS(r.err, k.want);
    EXPECT_FALSE(std::filesystem::exists(out)) << k.args;
  }
  // Extend-only options with the repeat mode.
  const auto r = test::run_extend_cli("convert " + test::quote(model) + " --tokenizer " + test::quote(tok) + " --out " +
                                      test::quote(out) + " --rope-mode repeat --kv-budget 0.5");
  EXPECT_EQ(r.status, 1);
  EXPECT_CONTAINS(r.err, "--kv-budget applies to --rope-mode extend (not repeat)");
}

}  // namespace
}  // namespace mlar
