// `mla-retrofit convert` and `mla-retrofit compare` as a user runs them: every source
// converted (plain and absorbed) and compared with its conversion, and the arguments
// that must be refused.
#include <gtest/gtest.h>

#include <filesystem>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/cli_runner.h"
#include "common/hf_fixtures.h"
#include "common/test_data.h"
#include "convert_sources.h"
#include "expect_error.h"
#include "io/hf_model.h"
#include "runtime/random_model.h"
#include "tokenizer/load.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using test::run_cli;
using test::sh_quote;

// A family fixture with a real tokenizer (compare tokenizes text): the family's
// config with a vocabulary that holds the llama3_style HF tokenizer fixture.
test::SourceFile family_with_tokenizer(const std::string& family) {
  static std::map<std::string, test::SourceFile> made;
  if (made.count(family)) return made[family];
  ModelConfig c = test::family_config(family);
  c.vocab_size = 520;
  Model m = random_model(c, 11);
  m.tokenizer = load_tokenizer(test::source_path("tests/fixtures/tokenizer/llama3_style"));
  const std::string dir = test::temp_dir("cli-" + family) + "/" + family;
  fs::create_directory(dir);
  write_hf_model(m, dir);
  return made[family] = {dir, ""};
}

test::SourceFile cli_source(const std::string& name) {
  if (name == "llama" || name == "qwen2" || name == "mistral") return family_with_tokenizer(name);
  return test::convert_source_file(name);
}

std::string tok_arg(const test::SourceFile& f) { return f.tokenizer.empty() ? "" : " --tokenizer " + sh_quote(f.tokenizer); }

struct Case {
  std::string source;
  bool absorb;
};

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const auto& s : test::convert_file_source_names())
    for (bool a : {false, true}) out.push_back({s, a});
  return out;
}

std::string case_name(const testing::TestParamInfo<Case>& i) {
  std::string s = i.param.source + (i.param.absorb ? "_absorbed" : "_naive");
  for (char& ch : s)
    if (ch == '-') ch = '_';
  return s;
}

class CliConvertCompare : public testing::TestWithParam<Case> {};

TEST_P(CliConvertCompare, ConvertedModelMatchesTheSource) {
  const test::SourceFile src = cli_source(GetParam().source);
  const std::string out = test::temp_dir("cli-out") + "/mla";
  const auto conv = run_cli("convert " + sh_quote(src.path) + tok_arg(src) + " --out " + sh_quote(out) +
                            " --rope-mode repeat --json" + (GetParam().absorb ? " --absorb" : ""));
  ASSERT_EQ(conv.status, 0) << conv.err;
  EXPECT_HAS(conv.err, "convert: layer 1/");
  const auto cj = nlohmann::json::parse(conv.out);
  EXPECT_EQ(cj["kv_bytes_per_token_after"], cj["kv_bytes_per_token_before"]);  // the exact mode keeps the GQA cache
  EXPECT_EQ(cj["mla"]["absorbed"], GetParam().absorb);
  EXPECT_TRUE(fs::exists(out + "/config.json"));

  const auto cmp = run_cli("compare " + sh_quote(src.path) + " " + sh_quote(out) + tok_arg(src) + " --text " +
                           sh_quote(test::dev_text_path()) +
                           " --ctx 64 --max-tokens 300 --prompt 'Once upon a time' -n 24 --json --kv-dtype f32");
  ASSERT_EQ(cmp.status, 0) << cmp.err;
  const auto j = nlohmann::json::parse(cmp.out);
  const double diff = j["max_abs_logit_diff"], ppl_a = j["a"]["perplexity"], ppl_b = j["b"]["perplexity"];
  std::printf("%s%s via CLI: max |dlogit| %.3g, mean KL %.3g, ppl %.6f vs %.6f, greedy agreement %.4f\n",
              GetParam().source.c_str(), GetParam().absorb ? " (absorbed)" : "", diff, double(j["mean_kl"]), ppl_a,
              ppl_b, double(j["greedy_agreement"]));
  EXPECT_LE(diff, 1e-4);
  EXPECT_EQ(fmt::format("{:.4g}", ppl_a), fmt::format("{:.4g}", ppl_b));
  EXPECT_EQ(j["greedy_agreement"], 1.0);
  EXPECT_EQ(j["generation"]["identical"], true);
  EXPECT_EQ(j["a"]["kv_bytes_per_token"], j["b"]["kv_bytes_per_token"]);
  EXPECT_EQ(j["kv_dtype"], "f32");
  EXPECT_EQ(j["tokens_compared"], 300);
}

INSTANTIATE_TEST_SUITE_P(Sources, CliConvertCompare, testing::ValuesIn(all_cases()), case_name);

TEST(CliConvert, SummaryReportsCacheAndParameters) {
  const auto src = cli_source("stories-bin");
  const std::string out = test::temp_dir("cli-summary") + "/mla";
  const auto r = run_cli("convert " + sh_quote(src.path) + tok_arg(src) + " --out " + sh_quote(out) + " --rope-mode repeat");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_HAS(r.out, "KV cache        1280 -> 1280 bytes per token");
  EXPECT_HAS(r.out, "parameters      260032 -> ");
  EXPECT_HAS(r.out, "MLA (repeat): latent r = 32, 4 rope heads x 8");
  for (int l = 1; l <= 5; ++l) EXPECT_HAS(r.err, "convert: layer " + std::to_string(l) + "/5");
}

TEST(CliCompare, HumanReadableReport) {
  const auto src = cli_source("stories-gguf");
  const auto r = run_cli("compare " + sh_quote(src.path) + " " + sh_quote(src.path) + " --text " +
                         sh_quote(test::dev_text_path()) + " --ctx 32 --max-tokens 100 -n 8 -q");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_HAS(r.out, "max |dlogit|       0.000e+00");
  EXPECT_HAS(r.out, "greedy agreement   100.00% (100/100)");
  EXPECT_HAS(r.out, "generation         identical (8 greedy tokens)");
  EXPECT_HAS(r.out, "bf16 KV cache 640 bytes/token");  // --kv-dtype bf16 by default
}

// Exit status 1, one "error: ..." line holding `want`, and no output directory.
void expect_refused(const std::string& args, const std::string& want, const std::string& out = "") {
  const auto r = run_cli(args);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_HAS(r.err, "error: ");
  EXPECT_HAS(r.err, want);
  if (!out.empty()) {
    EXPECT_FALSE(fs::exists(out)) << out;
  }
}

TEST(CliConvert, BadArgumentsAreRefusedClearly) {
  const auto src = cli_source("stories-bin");
  const std::string base = "convert " + sh_quote(src.path) + tok_arg(src);
  const std::string out = test::temp_dir("cli-bad") + "/mla";
  const std::string o = " --out " + sh_quote(out);
  expect_refused(base + o + " --rope-mode rotate", "--rope-mode 'rotate' is unknown (available: repeat, extend)", out);
  expect_refused(base + o + " --rope-mode extend", "--rope-mode extend needs calibration text: --calib FILE", out);
  expect_refused(base + o + " --rope-mode repeat --num-kv-heads 2 --head-dim 16",
                 "--num-kv-heads 2 --head-dim 16: rope heads of 16 would rotate with frequencies theta^(-2i/16) "
                 "instead of the source's theta^(-2i/8); only 4 x 8 keeps the model exact",
                 out);
  expect_refused(base + o + " --rope-mode repeat --num-kv-heads 2 --head-dim 8",
                 "a latent of 2 x 8 = 16 values cannot hold the source's 4 x 8 = 32", out);
  // The source's own layout is accepted.
  const auto ok = run_cli(base + o + " --rope-mode repeat --num-kv-heads 4 --head-dim 8 -q");
  EXPECT_EQ(ok.status, 0) << ok.err;
  // The output exists now: refused without --force, replaced with it.
  expect_refused(base + o + " --rope-mode repeat", "output already exists (use --force to replace it)");
  const auto forced = run_cli(base + o + " --rope-mode repeat --absorb --force -q");
  EXPECT_EQ(forced.status, 0) << forced.err;
  // An MLA model is not converted again.
  expect_refused("convert " + sh_quote(out) + " --out " + sh_quote(out + "2") + " --rope-mode repeat",
                 "already MLA (rope mode repeat)", out + "2");
  // --rope-mode is required.
  EXPECT_NE(run_cli(base + o + "3").status, 0);
}

TEST(CliCompare, MismatchedVocabularyIsRefused) {
  const auto a = cli_source("stories-gguf");
  const auto b = cli_source("llama");
  expect_refused("compare " + sh_quote(a.path) + " " + sh_quote(b.path) + " --text " + sh_quote(test::dev_text_path()),
                 "compare needs the same vocabulary");
}

}  // namespace
}  // namespace mlar
