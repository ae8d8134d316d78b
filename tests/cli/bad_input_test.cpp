// Bad input through the CLI: one error line naming the file, non-zero exit, no crash,
// nothing left behind, inputs untouched, existing outputs kept without --force.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "common/test_data.h"
#include "tensor/device.h"

namespace fs = std::filesystem;

namespace mlar::test {
namespace {

std::string stories(const std::string& f) { return data_path("models/stories260K/" + f); }

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// One line on stderr, starting "error: " and naming `file`.
void expect_clean_error(const CliResult& r, const std::string& file, const std::string& what) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
}

TEST(CliBadInput, TruncatedCheckpoints) {
  const std::string dir = temp_dir("trunc");
  for (const char* name : {"stories260K.bin", "stories260K.gguf"}) {
    std::ifstream in(stories(name), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const std::string cut = dir + "/cut-" + name;
    write_file(cut, bytes.substr(0, bytes.size() / 2));
    CliResult r = run_cli("inspect " + sh_quote(cut));
    EXPECT_EQ(r.status, 1) << name << r.err;
    EXPECT_NE(r.err.find(cut), std::string::npos) << r.err;
  }
}

TEST(CliBadInput, TextThatIsNotUtf8) {
  const std::string bad = temp_dir("utf8") + "/latin1.txt";
  write_file(bad, "caf\xe9 au lait\n");
  CliResult r = run_cli("eval " + sh_quote(stories("stories260K.gguf")) + " --text " + sh_quote(bad) + " --ctx 64");
  expect_clean_error(r, bad, "not valid UTF-8");
}

TEST(CliBadInput, MissingModelAndUnknownFormat) {
  expect_clean_error(run_cli("inspect /nonexistent/model.gguf"), "/nonexistent/model.gguf", "no such file");
  const std::string odd = temp_dir("odd") + "/weights.pt";
  write_file(odd, "x");
  expect_clean_error(run_cli("inspect " + sh_quote(odd)), odd, "unknown model format");
}

TEST(CliBadInput, BinWithoutTokenizerAsksForOne) {
  CliResult r = run_cli("generate " + sh_quote(stories("stories260K.bin")) + " -p hi -n 2");
  expect_clean_error(r, stories("stories260K.bin"), "--tokenizer");
}

TEST(CliBadInput, ContextLongerThanTheModelIsRefused) {
  const std::string text = data_path("text/tinystories-dev.txt");
  CliResult r = run_cli("eval " + sh_quote(stories("stories260K.bin")) + " --tokenizer " + sh_quote(stories("tok512.bin")) +
                        " --text " + sh_quote(text) + " --ctx 100000");
  expect_clean_error(r, stories("stories260K.bin"), "maximum context");
}

TEST(CliBadInput, ImportNeverOverwritesWithoutForceAndLeavesNothingOnFailure) {
  const std::string dir = temp_dir("imp");
  const std::string out = dir + "/out";
  fs::create_directory(out);
  write_file(out + "/keep.txt", "mine");
  CliResult r = run_cli("import " + sh_quote(stories("stories260K.gguf")) + " --out " + sh_quote(out));
  expect_clean_error(r, out, "--force");
  EXPECT_TRUE(fs::exists(out + "/keep.txt"));

  // A failing import (truncated input) leaves no output and no temporary files.
  const std::string cut = dir + "/cut.gguf";
  std::ifstream in(stories("stories260K.gguf"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  write_file(cut, bytes.substr(0, bytes.size() - 100));
  CliResult f = run_cli("import " + sh_quote(cut) + " --out " + sh_quote(dir + "/new"));
  EXPECT_EQ(f.status, 1);
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir)) entries += e.path().filename().string().find("tmp") != std::string::npos;
  EXPECT_EQ(entries, 0);
  EXPECT_FALSE(fs::exists(dir + "/new"));

  // With --force the output is replaced.
  CliResult ok = run_cli("import " + sh_quote(stories("stories260K.gguf")) + " --out " + sh_quote(out) + " --force");
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  EXPECT_FALSE(fs::exists(out + "/keep.txt"));
}

// Every command that runs a model takes --device; a build without the CUDA backend refuses cuda in one line
// naming the model and the build option, and an unknown device is refused by name.
TEST(CliBadInput, DeviceCudaNeedsTheCudaBuild) {
  if (cuda_built()) GTEST_SKIP() << "this build has the CUDA backend (tests/cuda covers --device cuda)";
  const std::string gguf = sh_quote(stories("stories260K.gguf")), text = sh_quote(data_path("text/tinystories-dev.txt"));
  const std::string out = (fs::temp_directory_path() / "mlar-device-test.npy").string();
  const std::string out_dir = (fs::temp_directory_path() / "mlar-device-test-convert").string();
  fs::remove(out);
  fs::remove_all(out_dir);
  for (const std::string& cmd :
       {"eval " + gguf + " --text " + text + " --ctx 64 --device cuda",
        "generate " + gguf + " -p a -n 2 --device cuda", "logits " + gguf + " --ids 1,2 --out " + out + " --device cuda",
        "compare " + gguf + " " + gguf + " --text " + text + " --ctx 64 --device-b cuda",
        "convert " + gguf + " --out " + sh_quote(out_dir) + " --rope-mode extend --calib " + text +
            " --kv-budget 0.5 --device cuda"}) {
    SCOPED_TRACE(cmd);
    expect_clean_error(run_cli(cmd), "stories260K.gguf", "-DMLAR_CUDA=ON");
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out_dir));
  // The calibration's device is an extend option: the exact repeat mode computes nothing to place.
  const CliResult rep = run_cli("convert " + gguf + " --out " + sh_quote(out_dir) + " --rope-mode repeat --device cpu");
  EXPECT_NE(rep.status, 0);
  EXPECT_NE(rep.err.find("--device"), std::string::npos) << rep.err;
  EXPECT_FALSE(fs::exists(out_dir));
  const CliResult r = run_cli("logits " + gguf + " --ids 1,2 --out " + out + " --device tpu");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("tpu"), std::string::npos) << r.err;
}

TEST(CliBadInput, BadArgumentsExitNonZero) {
  EXPECT_NE(run_cli("eval " + sh_quote(stories("stories260K.gguf")) + " --text x --ctx 1").status, 0);
  EXPECT_NE(run_cli("generate " + sh_quote(stories("stories260K.gguf")) + " -p a --top-p 1.5").status, 0);
  EXPECT_NE(run_cli("frobnicate").status, 0);
}

}  // namespace
}  // namespace mlar::test
