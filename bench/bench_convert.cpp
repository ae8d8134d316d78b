// bench_convert: wall time and peak resident memory of `mla-retrofit convert` against
// model size, without calibration (--rope-mode repeat) and with it (--rope-mode
// extend at a cache budget, calibrated on text).
//
//   bench_convert --cli PATH --tokenizer TOK --calib FILE [--sizes "H,L,NH,NKV,D,F;..."]
//                 [--large "H,L,NH,NKV,D,F;..."] [--calib-tokens 4096] [--budget 0.25] [--work DIR]
//                 [--threads N] [--json FILE]
//
// --large: further sizes converted by repeat only (calibration there would take an hour).
// For every size a random-weight Llama-shaped model (vocabulary of the tokenizer, so
// the calibration text tokenizes) is written as a BF16 HF directory under --work;
// then each conversion runs as a child process (as a user runs it) and its peak RSS
// comes from wait4's rusage. extend runs with a fixed --qk-rope-dim (d/2),
// --attn-key-balance and --rope-strategy uniform, so it makes one calibration pass and no
// held-out choices (the default --rope-strategy auto scores candidates: docs/compression.md).

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "child_process.h"
#include "io/hf_model.h"
#include "io/json_file.h"
#include "model/weights.h"
#include "runtime/random_model.h"
#include "tokenizer/load.h"

namespace {

using namespace mlar;
using json = nlohmann::json;
namespace fs = std::filesystem;

struct Args {
  std::string cli, tokenizer, calib, json_out, work = "build-bench/convert";
  std::string sizes = "256,4,8,2,32,704;512,8,8,2,64,1408;1024,12,16,4,64,2816;2048,16,32,8,64,5632";
  std::string large;
  int64_t calib_tokens = 4096;
  double budget = 0.25;
  int threads = 0;
};

const char* kUsage =
    "bench_convert --cli PATH --tokenizer TOK --calib FILE [--sizes \"H,L,NH,NKV,D,F;...\"]\n"
    "              [--large \"H,L,NH,NKV,D,F;...\"] [--calib-tokens 4096] [--budget 0.25] [--work DIR]\n"
    "              [--threads N] [--json FILE]\n"
    "Wall time and peak RSS of `convert` (repeat, and extend with calibration) against model size.\n";

Args parse(int argc, char** argv) {
  Args a;
  bench::parse_args(argc, argv, "bench_convert", kUsage, [&](const std::string& k, auto& val) {
    if (k == "--cli") a.cli = val();
    else if (k == "--tokenizer") a.tokenizer = val();
    else if (k == "--calib") a.calib = val();
    else if (k == "--sizes") a.sizes = val();
    else if (k == "--large") a.large = val();
    else if (k == "--calib-tokens") a.calib_tokens = bench::int_list(val(), k).front();
    else if (k == "--budget") a.budget = std::stod(val());
    else if (k == "--work") a.work = val();
    else if (k == "--threads") a.threads = std::stoi(val());
    else if (k == "--json") a.json_out = val();
    else return false;
    return true;
  });
  if (a.cli.empty() || a.tokenizer.empty() || a.calib.empty()) fail("bench_convert: --cli, --tokenizer and --calib are required");
  return a;
}

int64_t dir_bytes(const fs::path& dir) {
  int64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += static_cast<int64_t>(e.file_size());
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const auto tok = load_tokenizer(a.tokenizer);
    const int64_t vocab = tok->vocab_size();
    fs::create_directories(a.work);
    json out = {{"benchmark", "convert"},
                {"machine", bench::machine_json()},
                {"calib_tokens", a.calib_tokens},
                {"budget", a.budget},
                {"threads", a.threads},
                {"source_dtype", "BF16"}};
    json rows = json::array();
    std::vector<std::pair<std::string, bool>> sizes;  // size, with calibration
    for (const auto& s : bench::split_list(a.sizes, ';')) sizes.emplace_back(s, true);
    for (const auto& s : bench::split_list(a.large, ';')) sizes.emplace_back(s, false);
    for (const auto& [size, with_calib] : sizes) {
      const auto v = bench::int_list(size, "--sizes");
      if (v.size() != 6) fail("--sizes: each size is H,L,NH,NKV,D,F, got '{}'", size);
      const ModelConfig c = bench::llama_shape(v[0], v[1], v[2], v[3], v[4], v[5], vocab, 4096);
      const fs::path src = fs::path(a.work) / fmt::format("src-{}", size), dst = fs::path(a.work) / "out";
      auto t0 = bench::clock_type::now();
      int64_t params = 0;
      {
        Model m = random_model(c, 1);
        params = parameter_count(m.weights);
        fs::remove_all(src);
        fs::create_directories(src);
        write_hf_model(m, src, HfWriteOptions{.dtype = "BF16"});
      }
      fmt::print(stderr, "size {} ({:.1f} M parameters): written in {:.1f} s\n", size, static_cast<double>(params) / 1e6,
                 bench::seconds_since(t0));
      const std::vector<std::string> common{a.cli, "convert", src.string(), "--tokenizer", a.tokenizer, "--out",
                                            dst.string(), "--force", "-q", "--threads", std::to_string(a.threads)};
      struct Mode {
        std::string name;
        std::vector<std::string> extra;
      };
      const std::vector<Mode> modes{
          {"repeat", {"--rope-mode", "repeat"}},
          {"extend+calib",
           {"--rope-mode", "extend", "--calib", a.calib, "--calib-tokens", std::to_string(a.calib_tokens), "--kv-budget",
            fmt::format("{}", a.budget), "--qk-rope-dim", std::to_string(c.head_dim / 2), "--attn-key-balance", "0.1",
            "--rope-strategy", "uniform"}}};
      for (const auto& mode : modes) {
        if (!with_calib && mode.name != "repeat") continue;
        auto args = common;
        args.insert(args.end(), mode.extra.begin(), mode.extra.end());
        const bench::ChildResult r = bench::run_child(args, (fs::path(a.work) / "convert.log").string());
        rows.push_back({{"size", size},
                        {"config", {{"hidden_size", c.hidden_size}, {"num_layers", c.num_layers},
                                    {"num_heads", c.num_heads}, {"num_kv_heads", c.num_kv_heads},
                                    {"head_dim", c.head_dim}, {"intermediate_size", c.intermediate_size},
                                    {"vocab_size", c.vocab_size}}},
                        {"parameters", params},
                        {"source_bytes", dir_bytes(src)},
                        {"output_bytes", dir_bytes(dst)},
                        {"mode", mode.name},
                        {"seconds", r.seconds},
                        {"peak_rss_bytes", r.peak_rss_bytes},
                        {"peak_anon_bytes", r.peak_anon_bytes},
                        {"peak_file_bytes", r.peak_file_bytes}});
        fmt::print(stderr, "  {:<13} {:8.1f} s  peak RSS {:8.1f} MiB (anonymous {:.1f}, file-backed {:.1f})\n",
                   mode.name, r.seconds, static_cast<double>(r.peak_rss_bytes) / (1 << 20),
                   static_cast<double>(r.peak_anon_bytes) / (1 << 20),
                   static_cast<double>(r.peak_file_bytes) / (1 << 20));
      }
      fs::remove_all(src);
      fs::remove_all(dst);
    }
    out["rows"] = std::move(rows);
    if (a.json_out.empty()) fmt::print("{}\n", out.dump(2));
    else {
      write_json_file(a.json_out, out, true);  // results are regenerated
      fmt::print(stderr, "wrote {}\n", a.json_out);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
