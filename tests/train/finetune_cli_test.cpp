// `mla-retrofit finetune` as a user runs it, on stories260K with short runs: an
// interrupted run resumed with --resume writes the same model bytes as an
// uninterrupted one; the same --seed reproduces the logged loss curve; GQA models
// come back as HF directories and MLA conversions in the MLA format.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "io/load_model.h"

namespace mlar::test {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int status = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Runs the CLI with `args` (already shell-quoted where needed).
CliRun cli(const std::string& args) {
  static int n = 0;
  const fs::path dir = temp_dir("ft_cli_io");
  const fs::path o = dir / ("out" + std::to_string(n)), e = dir / ("err" + std::to_string(n));
  ++n;
  const std::string cmd = std::string(MLAR_CLI) + " " + args + " >" + o.string() + " 2>" + e.string();
  const int rc = std::system(cmd.c_str());
  CliRun r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = slurp(o);
  r.err = slurp(e);
  return r;
}

std::string stories() {
  return data_path("models/stories260K/stories260K.bin") + " --tokenizer " + data_path("models/stories260K/tok512.model");
}

std::string text() { return data_path("text/tinystories-dev.txt"); }

// "loss" of every step record of a log, in order.
std::vector<double> losses(const fs::path& log) {
  std::ifstream f(log);
  std::vector<double> l;
  std::string line;
  while (std::getline(f, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) l.push_back(j["loss"].get<double>());
  }
  return l;
}

const std::string kShort = " --steps 6 --lr 2e-3 --batch 4 --seq 48 --warmup 2 --clip 1 -q";

TEST(FinetuneCli, ResumeWritesTheSameModelBytes) {
  const fs::path dir = temp_dir("ft_cli_resume");
  const std::string common = stories() + " --text " + text() + kShort + " --train all --checkpoint-every 2 --seed 3";
  const CliRun a = cli("finetune " + common + " --threads 2 --out " + (dir / "a").string());
  ASSERT_EQ(a.status, 0) << a.err;
  const CliRun cut = cli("finetune " + common + " --threads 2 --out " + (dir / "b").string() + " --stop-after 5");
  ASSERT_EQ(cut.status, 0) << cut.err;
  EXPECT_NE(cut.out.find("stopped after update 5"), std::string::npos) << cut.out;
  EXPECT_FALSE(fs::exists(dir / "b" / "config.json"));  // no model yet
  EXPECT_EQ(losses(dir / "b" / "train_log.jsonl").size(), 5u);
  // Resumed on another thread count: the blocks of work are fixed, the result too.
  const CliRun res = cli("finetune " + common + " --threads 1 --out " + (dir / "b").string() + " --resume");
  ASSERT_EQ(res.status, 0) << res.err;
  EXPECT_EQ(slurp(dir / "a" / "model.safetensors"), slurp(dir / "b" / "model.safetensors"));
  EXPECT_EQ(slurp(dir / "a" / "checkpoint" / "tensors.safetensors"),
            slurp(dir / "b" / "checkpoint" / "tensors.safetensors"));
  // The resumed log holds each update once, with the uninterrupted run's losses.
  EXPECT_EQ(losses(dir / "a" / "train_log.jsonl"), losses(dir / "b" / "train_log.jsonl"));
  EXPECT_EQ(losses(dir / "b" / "train_log.jsonl").size(), 6u);
  // The output is an HF directory the loader reads, with the tokenizer.
  const Model m = load_model((dir / "a").string());
  EXPECT_FALSE(m.config.mla);
  EXPECT_TRUE(m.tokenizer);
}

TEST(FinetuneCli, SameSeedSameLossCurve) {
  const fs::path dir = temp_dir("ft_cli_seed");
  const std::string common = stories() + " --text " + text() + kShort;
  for (const char* name : {"s1", "s2"})
    ASSERT_EQ(cli("finetune " + common + " --seed 11 --out " + (dir / name).string()).status, 0);
  ASSERT_EQ(cli("finetune " + common + " --seed 12 --out " + (dir / "s3").string()).status, 0);
  const auto l1 = losses(dir / "s1" / "train_log.jsonl");
  EXPECT_EQ(l1.size(), 6u);
  EXPECT_EQ(l1, losses(dir / "s2" / "train_log.jsonl"));
  EXPECT_NE(l1, losses(dir / "s3" / "train_log.jsonl"));
  EXPECT_EQ(slurp(dir / "s1" / "model.safetensors"), slurp(dir / "s2" / "model.safetensors"));
}

TEST(FinetuneCli, MlaConversionLayerwiseAndE2eWithKl) {
  const fs::path dir = temp_dir("ft_cli_mla");
  const std::string mla = (dir / "mla").string();
  const CliRun conv = cli("convert " + stories() + " --rope-mode repeat --out " + mla + " -q");
  ASSERT_EQ(conv.status, 0) << conv.err;
  const std::string teacher = " --teacher " + data_path("models/stories260K/stories260K.bin");
  const CliRun lw = cli("finetune " + mla + " --text " + text() + kShort + teacher + " --mode layerwise --out " +
                     (dir / "lw").string() + " --log " + (dir / "lw.jsonl").string());
  ASSERT_EQ(lw.status, 0) << lw.err;
  const auto l = losses(dir / "lw.jsonl");
  ASSERT_EQ(l.size(), 6u);
  EXPECT_LT(l[0], 1e-9);  // the exact conversion reproduces every attention output
  const Model m = load_model((dir / "lw").string());
  ASSERT_TRUE(m.config.mla);
  EXPECT_EQ(m.format, "mla");
  // e2e with KL from the layerwise result, evaluated during training.
  const CliRun e2e = cli("finetune " + (dir / "lw").string() + " --text " + text() + kShort + teacher +
                      " --kl-weight 0.5 --out " + (dir / "e2e").string() + " --eval-text " + text() +
                      " --eval-every 3 --eval-tokens 300 --eval-ctx 64");
  ASSERT_EQ(e2e.status, 0) << e2e.err;
  std::ifstream f(dir / "e2e" / "train_log.jsonl");
  int evals = 0, kls = 0;
  std::string line;
  while (std::getline(f, line)) {
    const auto j = nlohmann::json::parse(line);
    evals += j.contains("eval_ppl");
    kls += j.contains("kl");
  }
  EXPECT_EQ(evals, 2);
  EXPECT_EQ(kls, 6);
  EXPECT_TRUE(load_model((dir / "e2e").string()).config.mla);
  const CliRun ev = cli("eval " + (dir / "e2e").string() + " --text " + text() + " --ctx 64 --max-tokens 300 -q");
  EXPECT_EQ(ev.status, 0) << ev.err;
}

TEST(FinetuneCli, RefusesBadUse) {
  const fs::path dir = temp_dir("ft_cli_bad");
  fs::create_directories(dir / "exists");
  const std::string common = stories() + " --text " + text() + kShort;
  CliRun r = cli("finetune " + common + " --out " + (dir / "exists").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  r = cli("finetune " + common + " --out " + (dir / "none").string() + " --resume");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no checkpoint"), std::string::npos) << r.err;
  r = cli("finetune " + common + " --out " + (dir / "lw").string() + " --mode layerwise");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--teacher"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mlar::test
