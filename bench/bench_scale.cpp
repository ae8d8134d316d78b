// bench_scale: every command of a real-size workflow on one model, as a user runs
// them (child processes of the CLI), with wall time and peak anonymous / file-backed
// memory apart (bench/child_process.h). The model is typically the random-weight
// Llama-3-8B-shaped BF16 directory that make_random_hf writes; with --depth-models,
// `convert` (repeat and extend) is also timed on models of the same width and other
// depths, to show time linear in depth and memory flat.
//
//   bench_scale --cli PATH --model DIR --calib FILE --text FILE [--work DIR]
//               [--steps inspect,eval,generate,repeat,extend,export-ds,export-gguf]
//               [--extend-args "..."] [--depth-models DIR,DIR,...] [--json FILE]
#include <filesystem>
#include <fstream>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "child_process.h"
#include "io/json_file.h"

namespace {

using namespace mlar;
using json = nlohmann::json;
namespace fs = std::filesystem;

// The fixed choices of the extend step (no held-out search): a 25% cache with the
// exportable latent norm, 4,096 calibration tokens.
const char* kExtendArgs = "--kv-budget 0.25 --calib-tokens 4096 --latent-norm calibrated --qk-rope-dim 64 "
                          "--attn-key-balance 1";

struct Args {
  std::string cli, model, calib, text, json_out, work = "build-bench/scale";
  std::string steps = "inspect,eval,generate,repeat,extend,export-ds,export-gguf";
  std::string extend_args = kExtendArgs;
  std::string depth_models;
};

const char* kUsage =
    "bench_scale --cli PATH --model DIR --calib FILE --text FILE [--work DIR]\n"
    "            [--steps inspect,eval,generate,repeat,extend,export-ds,export-gguf]\n"
    "            [--extend-args \"...\"] [--depth-models DIR,DIR,...] [--json FILE]\n"
    "Runs each step as a child process of the CLI and reports wall time and peak anonymous and\n"
    "file-backed memory. eval: two windows of 256 tokens; generate: 16 tokens greedy; extend: the\n"
    "fixed choices of --extend-args; the exports read the extend output. Outputs go under --work\n"
    "and are removed after each step that no later step reads.\n";

Args parse(int argc, char** argv) {
  Args a;
  bench::parse_args(argc, argv, "bench_scale", kUsage, [&](const std::string& k, auto& val) {
    if (k == "--cli") a.cli = val();
    else if (k == "--model") a.model = val();
    else if (k == "--calib") a.calib = val();
    else if (k == "--text") a.text = val();
    else if (k == "--work") a.work = val();
    else if (k == "--steps") a.steps = val();
    else if (k == "--extend-args") a.extend_args = val();
    else if (k == "--depth-models") a.depth_models = val();
    else if (k == "--json") a.json_out = val();
    else return false;
    return true;
  });
  if (a.cli.empty() || a.model.empty() || a.calib.empty() || a.text.empty())
    fail("bench_scale: --cli, --model, --calib and --text are required");
  return a;
}

double mib(int64_t b) { return static_cast<double>(b) / (1 << 20); }

json row(const std::string& step, const std::string& model, const bench::ChildResult& r) {
  fmt::print(stderr, "  {:<12} {:8.1f} s   anonymous {:8.1f} MiB   file-backed {:8.1f} MiB   ({})\n", step,
             r.seconds, mib(r.peak_anon_bytes), mib(r.peak_file_bytes), model);
  return {{"step", step},
          {"model", model},
          {"seconds", r.seconds},
          {"peak_anon_bytes", r.peak_anon_bytes},
          {"peak_file_bytes", r.peak_file_bytes},
          {"peak_rss_bytes", r.peak_rss_bytes}};
}

// `dir` with its config.json's rope_scaling and mla.rope_inv_freq removed, as a new
// directory of links to the same weight files (no copy).
fs::path unscaled_copy(const fs::path& dir, const fs::path& out) {
  fs::remove_all(out);
  fs::create_directories(out);
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != "config.json") fs::create_symlink(fs::absolute(e.path()), out / e.path().filename());
  std::ifstream in(dir / "config.json");
  json c = json::parse(in);
  c["rope_scaling"] = nullptr;
  if (c.contains("mla")) c["mla"].erase("rope_inv_freq");
  write_json_file(out / "config.json", c);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    fs::create_directories(a.work);
    const fs::path work(a.work);
    const std::string log = (work / "step.log").string();
    const std::vector<std::string> steps = bench::split_list(a.steps);
    auto has = [&](const char* s) { return std::find(steps.begin(), steps.end(), s) != steps.end(); };
    std::vector<std::string> extend = bench::split_list(a.extend_args, ' ');
    auto cmd = [&](std::vector<std::string> v) {
      v.insert(v.begin(), a.cli);
      return v;
    };
    auto convert_cmd = [&](const std::string& model, const std::string& mode, const fs::path& out) {
      std::vector<std::string> v = cmd({"convert", model, "--rope-mode", mode, "--out", out.string(), "--force"});
      if (mode == "extend") {
        v.insert(v.end(), {"--calib", a.calib});
        v.insert(v.end(), extend.begin(), extend.end());
      }
      return v;
    };
    json rows = json::array();
    fmt::print(stderr, "bench_scale: {}\n", a.model);
    if (has("inspect")) rows.push_back(row("inspect", a.model, bench::run_child(cmd({"inspect", a.model}), log)));
    if (has("eval"))
      rows.push_back(row("eval", a.model,
                         bench::run_child(cmd({"eval", a.model, "--text", a.text, "--ctx", "256", "--max-tokens", "510"}),
                                          log)));
    if (has("generate"))
      rows.push_back(row("generate", a.model,
                         bench::run_child(cmd({"generate", a.model, "--prompt", "Once upon a time", "-n", "16",
                                               "--temperature", "0"}),
                                          log)));
    const fs::path rep = work / "repeat", ext = work / "extend";
    if (has("repeat")) {
      rows.push_back(row("repeat", a.model, bench::run_child(convert_cmd(a.model, "repeat", rep), log)));
      fs::remove_all(rep);
    }
    if (has("extend")) rows.push_back(row("extend", a.model, bench::run_child(convert_cmd(a.model, "extend", ext), log)));
    if (has("export-ds")) {
      const fs::path out = work / "deepseek-v3";
      rows.push_back(row("export-ds", ext.string(),
                         bench::run_child(cmd({"export", ext.string(), "--format", "deepseek-v3", "--out", out.string(),
                                               "--force"}),
                                          log)));
      fs::remove_all(out);
    }
    if (has("export-gguf")) {
      // GGUF deepseek2 carries no RoPE scaling (llama.cpp reads any as YaRN), so a
      // Llama-3-scaled model is refused by design; the cost of writing the file does
      // not depend on the frequencies, so it is measured on the same tensors with the
      // scaling (and explicit frequencies) taken out of config.json.
      const fs::path src = unscaled_copy(ext, work / "extend-unscaled");
      const fs::path out = work / "model.gguf";
      rows.push_back(row("export-gguf", src.string(),
                         bench::run_child(cmd({"export", src.string(), "--format", "gguf", "--out", out.string(),
                                               "--force"}),
                                          log)));
      fs::remove_all(out);
      fs::remove_all(src);
    }
    fs::remove_all(ext);
    for (const std::string& m : bench::split_list(a.depth_models)) {
      for (const char* mode : {"repeat", "extend"}) {
        const fs::path out = work / (std::string("depth-") + mode);
        rows.push_back(row(std::string("depth-") + mode, m, bench::run_child(convert_cmd(m, mode, out), log)));
        fs::remove_all(out);
      }
    }
    const json out = {{"benchmark", "scale"}, {"machine", bench::machine_json()}, {"extend_args", a.extend_args},
                      {"rows", rows}};
    if (!a.json_out.empty()) write_json_file(a.json_out, out, /*force=*/true);
    else fmt::print("{}\n", out.dump(2));
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
  return 0;
}
