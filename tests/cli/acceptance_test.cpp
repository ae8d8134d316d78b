// The foundation's acceptance commands, run through the CLI binary.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "common/test_data.h"

namespace mlar::test {
namespace {

std::string stories(const std::string& f) { return sh_quote(data_path("models/stories260K/" + f)); }

TEST(CliAcceptance, GreedyGenerationFromTheBin) {
  CliResult r = run_cli("generate " + stories("stories260K.bin") + " --tokenizer " + stories("tok512.bin") +
                        " --prompt 'Once upon a time' -n 30 --temperature 0");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", 0), 0u)
      << r.out;
}

TEST(CliAcceptance, SeededSamplingReproducesAndDiffersAcrossSeeds) {
  auto gen = [](int seed) {
    return run_cli("generate " + stories("stories260K.gguf") + " -p 'Once upon a time' -n 40 -t 1.0 --top-p 0.95 --seed " +
                   std::to_string(seed))
        .out;
  };
  std::string a = gen(1), b = gen(1), c = gen(2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(CliAcceptance, PerplexityIsTheSameFromEveryFormat) {
  const std::string text = sh_quote(data_path("text/tinystories-dev.txt"));
  const std::string hf = temp_dir("accept") + "/stories260K-hf";
  CliResult imp = run_cli("import " + stories("stories260K.bin") + " --tokenizer " + stories("tok512.model") +
                          " --out " + sh_quote(hf));
  ASSERT_EQ(imp.status, 0) << imp.err;
  for (std::string model : {stories("stories260K.bin") + " --tokenizer " + stories("tok512.model"),
                            stories("stories260K.bin") + " --tokenizer " + stories("tok512.bin"),
                            stories("stories260K.gguf"), sh_quote(hf)}) {
    CliResult r = run_cli("eval " + model + " --text " + text + " --ctx 256 --json -q");
    ASSERT_EQ(r.status, 0) << model << "\n" << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_NEAR(j["perplexity"].get<double>(), 6.50, 0.05) << model;
    EXPECT_EQ(j["tokens_scored"].get<int64_t>(), 79521) << model;
  }
}

// eval --batch 1 scores every token through a one-token decode step (the decode attention kernel, as
// generation runs); the default batch runs prompts (widen + sgemm attention). With an F32 cache only the
// order of the f32 sums differs; with the BF16 cache both read the same rounded rows.
TEST(CliAcceptance, PerplexityThroughDecodeStepsMatchesPrompts) {
  const std::string base = "eval " + stories("stories260K.gguf") + " --text " +
                           sh_quote(data_path("text/tinystories-dev.txt")) + " --ctx 256 --max-tokens 1500 --json -q";
  for (const char* kv : {"f32", "bf16"}) {
    CliResult prompt = run_cli(base + " --kv-dtype " + kv), step = run_cli(base + " --batch 1 --kv-dtype " + kv);
    ASSERT_EQ(prompt.status, 0) << prompt.err;
    ASSERT_EQ(step.status, 0) << step.err;
    const auto a = nlohmann::json::parse(prompt.out), b = nlohmann::json::parse(step.out);
    EXPECT_EQ(b["batch"], 1);
    EXPECT_EQ(a["tokens_scored"], b["tokens_scored"]);
    EXPECT_NEAR(b["perplexity"].get<double>() / a["perplexity"].get<double>(), 1.0, 1e-5) << kv;
  }
}

TEST(CliAcceptance, InspectReportsKvCacheBytes) {
  CliResult r = run_cli("inspect " + stories("stories260K.bin") + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  // 2 (k, v) x 4 kv heads x head size 8 x 4 bytes, 5 layers, 512 positions.
  EXPECT_EQ(j["kv_cache"]["f32"]["bytes_per_token_per_layer"], 256);
  EXPECT_EQ(j["kv_cache"]["f32"]["bytes_per_token"], 1280);
  EXPECT_EQ(j["kv_cache"]["f32"]["bytes_at_max_context"], 1280 * 512);
  EXPECT_EQ(j["kv_dtype"], "bf16");  // the default
  EXPECT_EQ(j["kv_cache"]["kv_dtype"]["bytes_per_token"], 640);
  CliResult f16 = run_cli("inspect " + stories("stories260K.bin") + " --kv-dtype f16");
  ASSERT_EQ(f16.status, 0) << f16.err;
  EXPECT_NE(f16.out.find("f16/token"), std::string::npos) << f16.out;
  EXPECT_NE(f16.out.find("640 B"), std::string::npos) << f16.out;
  EXPECT_NE(run_cli("inspect " + stories("stories260K.bin") + " --kv-dtype f8").status, 0);
  EXPECT_EQ(j["parameters"], 64 * 512 + 5 * (64 + 4 * 64 * 64 / 1 - 2 * 64 * 32 + 64 + 3 * 64 * 172) + 64);
}

TEST(CliAcceptance, TokenizeMatchesAcrossTokenizerFiles) {
  const std::string text = sh_quote(data_path("text/tinystories-dev.txt"));
  CliResult a = run_cli("tokenize " + stories("tok512.bin") + " --text " + text);
  CliResult b = run_cli("tokenize " + stories("tok512.model") + " --text " + text);
  CliResult c = run_cli("tokenize " + stories("stories260K.gguf") + " --text " + text);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out, c.out);
  EXPECT_GT(a.out.size(), 100000u);
}

TEST(CliAcceptance, EveryCommandHasHelp) {
  for (const char* c : {"", "import", "tokenize", "inspect", "generate", "eval"}) {
    CliResult r = run_cli(std::string(c) + " --help");
    EXPECT_EQ(r.status, 0) << c;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << c;
  }
  EXPECT_NE(run_cli("eval --help").out.find("prepended"), std::string::npos);
}

}  // namespace
}  // namespace mlar::test
