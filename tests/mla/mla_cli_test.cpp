// `generate` and `eval` with --attn: the repeat form of stories260K (built by hand,
// written as an MLA directory) gives the GQA model's greedy text and perplexity with
// every evaluation; naive/absorbed on a GQA model are refused with a clear message.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "io/load_model.h"
#include "io/mla_model.h"
#include "mla_test_models.h"

namespace mlar {
namespace {

struct CliRun {
  int status = -1;
  std::string out;  // stdout and stderr together
};

CliRun run_cli(const std::string& args) {
  CliRun r;
  FILE* p = popen((std::string(MLAR_CLI) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t got = 0;
  while ((got = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), got);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

class MlaCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bin_ = test::data_path("models/stories260K/stories260K.bin");
    tok_ = test::data_path("models/stories260K/tok512.model");
    const Model gqa = load_model(bin_, LoadOptions{tok_});
    dir_ = test::temp_dir("mla_cli") + "/stories-repeat";
    std::filesystem::create_directory(dir_);
    write_mla_model(test::repeat_by_hand(gqa), dir_);
  }
  static std::string bin_, tok_, dir_;
};
std::string MlaCli::bin_, MlaCli::tok_, MlaCli::dir_;

// The generated text of a greedy run (--json output), f32 caches (exact).
std::string greedy_text(const std::string& model_args, const std::string& attn) {
  const CliRun r = run_cli("generate " + model_args + " -p 'Once upon a time' -n 24 -t 0 --json --kv-dtype f32" +
                        (attn.empty() ? "" : " --attn " + attn));
  EXPECT_EQ(r.status, 0) << r.out;
  if (r.status != 0) return {};
  return nlohmann::json::parse(r.out)["text"].get<std::string>();
}

TEST_F(MlaCli, GenerateGivesTheGqaTextWithEveryEvaluation) {
  const std::string ref = greedy_text(q(bin_) + " --tokenizer " + q(tok_), "");
  ASSERT_FALSE(ref.empty());
  for (const char* attn : {"auto", "naive", "absorbed"}) EXPECT_EQ(greedy_text(q(dir_), attn), ref) << attn;
}

TEST_F(MlaCli, EvalGivesTheGqaPerplexityWithEveryEvaluation) {
  const std::string text = q(test::data_path("text/tinystories-dev.txt"));
  auto ppl = [&](const std::string& model_args, const std::string& kv_dtype) {
    const CliRun r = run_cli("eval " + model_args + " --text " + text + " --ctx 100 --max-tokens 400 -q --json" +
                             " --kv-dtype " + kv_dtype);
    EXPECT_EQ(r.status, 0) << r.out;
    if (r.status != 0) return 0.0;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["kv_dtype"], kv_dtype);
    return j["perplexity"].get<double>();
  };
  // Exact with f32 caches; with bf16 caches (the default) the GQA cache holds rounded
  // roped K / V and the MLA cache rounded latents, so the two round different values.
  const double ref = ppl(q(bin_) + " --tokenizer " + q(tok_), "f32");
  ASSERT_GT(ref, 1.0);
  for (const char* attn : {"auto", "naive", "absorbed"}) {
    EXPECT_NEAR(ppl(q(dir_) + " --attn " + attn, "f32"), ref, 1e-5 * ref) << attn;
    EXPECT_NEAR(ppl(q(dir_) + " --attn " + attn, "bf16"), ref, 1e-3 * ref) << attn;
  }
}

TEST_F(MlaCli, NaiveOrAbsorbedOnAGqaModelIsRefused) {
  for (const char* attn : {"naive", "absorbed"}) {
    const CliRun g = run_cli("generate " + q(bin_) + " --tokenizer " + q(tok_) + " -p hi -n 2 --attn " + attn);
    EXPECT_EQ(g.status, 1) << g.out;
    EXPECT_NE(g.out.find("is a GQA model"), std::string::npos) << g.out;
    EXPECT_NE(g.out.find(std::string("--attn ") + attn), std::string::npos) << g.out;
    const CliRun e = run_cli("eval " + q(bin_) + " --tokenizer " + q(tok_) + " --text " +
                          q(test::data_path("text/tinystories-dev.txt")) + " --max-tokens 50 -q --attn " + attn);
    EXPECT_EQ(e.status, 1) << e.out;
    EXPECT_NE(e.out.find("MLA models only"), std::string::npos) << e.out;
  }
  const CliRun bad = run_cli("generate " + q(dir_) + " -p hi -n 2 --attn fast");
  EXPECT_NE(bad.status, 0);
}

}  // namespace
}  // namespace mlar
