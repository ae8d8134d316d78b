// Nothing is lost when `convert` or `export` is killed (SIGKILL) while writing:
// no partial output appears under the output name, the input is untouched, and an
// existing output is never replaced without --force.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/test_data.h"
#include "hardening_util.h"
#include "io/hf_model.h"
#include "io/mla_model.h"
#include "runtime/random_mla_model.h"
#include "runtime/random_model.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

// Bytes written so far under the temporary sibling(s) of `out` (".NAME.tmp-*"). The
// CLI runs meanwhile and renames its files' own temporaries into place: a file (or the
// directory) that moves between the listing and the size counts as nothing this poll.
int64_t temp_bytes(const fs::path& out) {
  int64_t n = -1;
  const std::string prefix = "." + out.filename().string() + ".tmp-";
  auto size_of = [](const fs::path& p) {
    std::error_code ec;
    const auto s = fs::file_size(p, ec);
    return ec ? int64_t{0} : static_cast<int64_t>(s);
  };
  try {
    for (auto& e : fs::directory_iterator(out.parent_path())) {
      if (e.path().filename().string().rfind(prefix, 0) != 0) continue;
      n = std::max<int64_t>(n, 0);
      if (e.is_directory()) {
        for (auto& f : fs::recursive_directory_iterator(e.path()))
          if (f.is_regular_file()) n += size_of(f.path());
      } else if (e.is_regular_file()) {
        n += size_of(e.path());
      }
    }
  } catch (const fs::filesystem_error&) {  // a directory moved while listed: what was counted so far
  }
  return n;
}

// Starts the CLI with `args`, waits until it has written some bytes under a
// temporary name next to `out`, kills it with SIGKILL, and returns whether it was
// caught mid-write (false if it finished first).
bool kill_mid_write_once(const std::vector<std::string>& args, const fs::path& out) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv{const_cast<char*>(MLAR_CLI)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    freopen("/dev/null", "w", stderr);
    freopen("/dev/null", "w", stdout);
    execv(MLAR_CLI, argv.data());
    _exit(127);
  }
  bool caught = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;  // finished before we saw a partial write
    if (temp_bytes(out) > 0) {
      kill(pid, SIGKILL);
      caught = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  int status;
  waitpid(pid, &status, 0);
  return caught && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// kill_mid_write_once, tried up to three times: on a loaded machine the poll can
// miss the whole write, and a run that finished is removed before the next try.
bool kill_mid_write(const std::vector<std::string>& args, const fs::path& out) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (kill_mid_write_once(args, out)) return true;
    fs::remove_all(out);
  }
  return false;
}

ModelConfig big_config() {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 4096;
  c.hidden_size = 512;
  c.intermediate_size = 1536;
  c.num_layers = 6;
  c.num_heads = 8;
  c.num_kv_heads = 4;
  c.head_dim = 64;
  c.max_position_embeddings = 512;
  return c;  // ~25M parameters, ~100 MB of float32
}

TEST(Kill, ConvertKilledMidWriteLeavesNoOutputAndTheInputIntact) {
  const fs::path dir = test::temp_dir("kill-convert");
  const fs::path src = dir / "src", out = dir / "mla";
  fs::create_directory(src);
  write_hf_model(random_model(big_config(), 3), src);
  const std::string before = test::fingerprint(src);

  ASSERT_TRUE(kill_mid_write({"convert", src.string(), "--rope-mode", "repeat", "--out", out.string(), "-q"}, out))
      << "convert finished before any partial write was seen";
  EXPECT_FALSE(fs::exists(out)) << "partial output under the output name";
  EXPECT_EQ(test::fingerprint(src), before) << "input modified";

  // A complete run, then a second one without --force, which must refuse and keep it.
  const std::string cmd = std::string(MLAR_CLI) + " convert " + src.string() + " --rope-mode repeat -q --out " + out.string();
  ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0);
  const std::string done = test::fingerprint(out);
  EXPECT_NE(std::system((cmd + " >/dev/null 2>&1").c_str()), 0);
  EXPECT_EQ(test::fingerprint(out), done);
}

TEST(Kill, ExportKilledMidWriteLeavesNoOutputAndTheInputIntact) {
  const fs::path dir = test::temp_dir("kill-export");
  const fs::path src = dir / "mla";
  const ModelConfig c = test::with_deepseek_mla(big_config(), 128, 64, 32, 64);
  fs::create_directory(src);
  write_mla_model(random_mla_model(c, 5), src);
  const std::string before = test::fingerprint(src);

  for (const char* format : {"gguf", "deepseek-v3"}) {
    const fs::path out = dir / (std::string(format) == "gguf" ? "model.gguf" : "ds3");
    ASSERT_TRUE(kill_mid_write({"export", src.string(), "--format", format, "--out", out.string()}, out))
        << format << ": export finished before any partial write was seen";
    EXPECT_FALSE(fs::exists(out)) << format << ": partial output under the output name";
    EXPECT_EQ(test::fingerprint(src), before) << format << ": input modified";
  }
}

}  // namespace
}  // namespace mlar
