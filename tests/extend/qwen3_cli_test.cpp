// `convert --rope-mode extend` of a Qwen3 directory as a user runs it: the default
// (cached score scales) converts and runs, `export` refuses it with the reason and the
// fix, `--format deepseek-v3` converts with calibrated constants and exports in one
// command, and `--qk-norm cached` with `--format` is refused before any work.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/hf_fixtures.h"
#include "common/test_data.h"
#include "extend/extend_cli_util.h"
#include "extend/extend_fixtures.h"
#include "io/hf_model.h"
#include "io/load_model.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using test::quote;
using test::run_extend_cli;

// A random Qwen3 directory whose vocabulary covers the gpt2_style tokenizer fixture.
const std::string& qwen3_with_tokenizer() {
  static const std::string dir = [] {
    ModelConfig c = test::family_config("qwen3");
    c.vocab_size = 520;
    const std::string d = test::temp_dir("qwen3-cli-src") + "/qwen3";
    fs::create_directory(d);
    write_hf_model(random_model(c, 3), d);
    return d;
  }();
  return dir;
}

std::string common_args() {
  return quote(qwen3_with_tokenizer()) + " --tokenizer " +
         quote(test::source_path("tests/fixtures/tokenizer/gpt2_style/tokenizer.json")) +
         " --rope-mode extend --kv-budget 0.5 --qk-rope-dim 8 --attn-key-balance 0.1 --calib-len 64 "
         "--calib-tokens 4096 -q --calib " +
         quote(test::data_path("text/tinystories-calib.txt"));
}

TEST(Qwen3Cli, ConvertsExportsAndRefuses) {
  const std::string dir = test::temp_dir("qwen3-cli");
  const auto conv = run_extend_cli("convert " + common_args() + " --out " + quote(dir + "/cached") + " --report " +
                                   quote(dir + "/cached.json"));
  ASSERT_EQ(conv.status, 0) << conv.err;
  const nlohmann::json rep = nlohmann::json::parse(std::ifstream(dir + "/cached.json"));
  EXPECT_EQ(rep["qk_norm"]["mode"], "cached");
  EXPECT_EQ(rep["qk_norm"]["cached_key_scales_per_token_layer"], 2);
  EXPECT_EQ(rep["qk_norm"]["layer_key_scale"].size(), 2u);
  EXPECT_DOUBLE_EQ(rep["kv_fraction"].get<double>(), 0.5);
  const Model m = load_model(dir + "/cached");
  ASSERT_TRUE(m.config.mla);
  EXPECT_EQ(m.config.mla->qk_scale_kv_heads, 2);
  EXPECT_EQ(m.config.kv_values_per_token_layer(0), 32);  // half of 2 x 2 x 16, key scales included
  const auto ins = run_extend_cli("inspect " + quote(dir + "/cached"));
  ASSERT_EQ(ins.status, 0) << ins.err;
  EXPECT_CONTAINS(ins.out, "as score scales (Qwen3 extend, --qk-norm cached)");
  EXPECT_CONTAINS(ins.out, "2 key scales cached per token");

  const auto exp = run_extend_cli("export " + quote(dir + "/cached") + " --format deepseek-v3 --out " +
                                  quote(dir + "/cached-ds"));
  EXPECT_EQ(exp.status, 1);
  EXPECT_CONTAINS(exp.err, "per-head q/k norms as score scales");
  EXPECT_CONTAINS(exp.err, "--qk-norm calibrated");
  EXPECT_FALSE(fs::exists(dir + "/cached-ds"));

  const auto both = run_extend_cli("convert " + common_args() + " --qk-norm cached --format deepseek-v3 --out " +
                                   quote(dir + "/x") + " --export-out " + quote(dir + "/x-ds"));
  EXPECT_EQ(both.status, 1);
  EXPECT_CONTAINS(both.err, "--qk-norm cached conflicts with --format deepseek-v3");
  EXPECT_FALSE(fs::exists(dir + "/x"));

  const auto fmt = run_extend_cli("convert " + common_args() + " --format deepseek-v3 --out " + quote(dir + "/cal") +
                                  " --export-out " + quote(dir + "/cal-ds"));
  ASSERT_EQ(fmt.status, 0) << fmt.err;
  const Model cal = load_model(dir + "/cal");
  EXPECT_EQ(cal.config.mla->qk_scale_dim, 0);
  const Model ds = load_model(dir + "/cal-ds");
  const auto ids = test::random_ids(40, 96, 5);
  EXPECT_LE(test::max_abs_diff(test::runtime_logits(ds, ids), test::runtime_logits(cal, ids)), 1e-4);
}

}  // namespace
}  // namespace mlar
