// A disk that fills during a streamed write (ENOSPC injected by the writers' fault
// hook, util/write_fault.h, through MLAR_FAULT_WRITE_AFTER_BYTES): every command that
// writes a model fails with one error line naming the file and the cause, leaves
// nothing under the output name and no temporary file beside it, and does not touch
// its input. The byte counts land in a shard's data, in a later shard and in a GGUF
// file's tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "common/test_data.h"
#include "hardening_util.h"
#include "io/hf_model.h"
#include "io/mla_model.h"
#include "runtime/random_mla_model.h"
#include "runtime/random_model.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

ModelConfig gqa_config() {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 512;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.max_position_embeddings = 256;
  return c;  // ~0.4M parameters, ~1.7 MB of float32
}

struct Run {
  int status = 0;
  std::string output;
};

// Runs the CLI with the fault armed after `fault_bytes` bytes (< 0: not armed).
Run run_cli(const std::vector<std::string>& args, int64_t fault_bytes) {
  std::string cmd = fault_bytes >= 0 ? "MLAR_FAULT_WRITE_AFTER_BYTES=" + std::to_string(fault_bytes) + " " : "";
  cmd += MLAR_CLI;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  r.status = pclose(p);
  return r;
}

// Entries of `dir` other than the given names.
std::vector<std::string> others(const fs::path& dir, const std::vector<std::string>& keep) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (std::find(keep.begin(), keep.end(), n) == keep.end()) out.push_back(n);
  }
  return out;
}

// `args` writing `out` (in `dir`, beside `input`) fails at every fault offset, then
// succeeds unarmed.
void expect_clean_failures(const std::vector<std::string>& args, const fs::path& dir, const fs::path& input,
                           const fs::path& out, const std::vector<int64_t>& offsets) {
  const std::string before = test::fingerprint(input);
  for (int64_t at : offsets) {
    const Run r = run_cli(args, at);
    EXPECT_NE(r.status, 0) << at << ": " << r.output;
    EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << at << ": " << r.output;
    EXPECT_NE(r.output.find(out.filename().string()), std::string::npos) << "error names no file: " << r.output;
    EXPECT_FALSE(fs::exists(out)) << at << ": partial output under the output name";
    EXPECT_EQ(others(dir, {input.filename().string()}), std::vector<std::string>{}) << at << ": leftovers";
    EXPECT_EQ(test::fingerprint(input), before) << at << ": input modified";
  }
  const Run ok = run_cli(args, -1);
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_TRUE(fs::exists(out));
}

TEST(DiskFull, ConvertAndImportLeaveNothingBehind) {
  const fs::path dir = test::temp_dir("disk-full-convert");
  const fs::path src = dir / "src";
  fs::create_directory(src);
  write_hf_model(random_model(gqa_config(), 3), src);
  // repeat: sharded output (3 shards of ~0.6 MB); the faults land in the first
  // shard, in a later one and near the end.
  expect_clean_failures({"convert", src.string(), "--rope-mode", "repeat", "-q", "--out", (dir / "mla").string(),
                         "--max-shard-bytes", "600000"},
                        dir, src, dir / "mla", {0, 1000, 700000, 1500000});
  fs::remove_all(dir / "mla");
  expect_clean_failures({"import", src.string(), "--out", (dir / "hf").string(), "--dtype", "BF16"}, dir, src,
                        dir / "hf", {0, 200000});
}

TEST(DiskFull, ExportLeavesNothingBehind) {
  const fs::path dir = test::temp_dir("disk-full-export");
  const fs::path src = dir / "mla";
  const ModelConfig c = test::with_deepseek_mla(gqa_config(), 32, 32, 16, 32);
  fs::create_directory(src);
  write_mla_model(random_mla_model(c, 5), src);
  for (const char* format : {"gguf", "deepseek-v3"}) {
    const fs::path out = dir / (std::string(format) == "gguf" ? "model.gguf" : "ds3");
    expect_clean_failures({"export", src.string(), "--format", format, "--out", out.string()}, dir, src, out,
                          {0, 5000, 400000});
    fs::remove_all(out);
  }
}

}  // namespace
}  // namespace mlar
