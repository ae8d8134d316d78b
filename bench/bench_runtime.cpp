// bench_runtime: prefill and decode tokens/s of the CPU runtime.
//
//   bench_runtime [--model PATH (any model the CLI reads)] [--threads N] [--prefill 128,512] [--decode 128]
//                 [--context 256] [--reps 3] [--no-random] [--json]
//
// Models: stories260K (PATH, else $MLAR_DATA/models/stories260K/stories260K.bin) and
// a random-weight Llama-shaped model (8 layers, hidden 1024, 16 heads, 4 kv heads,
// intermediate 2816, vocab 32000). For each: prefill of P tokens from an empty cache
// (best of --reps), and decode of --decode tokens one at a time after a prefill of
// --context tokens (the decode cost grows with the context).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io/load_model.h"
#include "ops/threads.h"
#include "runtime/random_model.h"
#include "runtime/session.h"
#include "util/error.h"

namespace {

using clock_type = std::chrono::steady_clock;

struct Args {
  std::string model;
  int threads = 0;
  std::vector<int64_t> prefill{128, 512};
  int64_t decode = 128;
  int64_t context = 256;
  int reps = 3;
  bool random = true;
  bool json = false;
};

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) mlar::fail("bench_runtime: {} needs a value", k);
      return argv[++i];
    };
    if (k == "--model") a.model = val();
    else if (k == "--threads") a.threads = std::stoi(val());
    else if (k == "--prefill") a.prefill = parse_list(val());
    else if (k == "--decode") a.decode = std::stoll(val());
    else if (k == "--context") a.context = std::stoll(val());
    else if (k == "--reps") a.reps = std::max(1, std::stoi(val()));
    else if (k == "--no-random") a.random = false;
    else if (k == "--json") a.json = true;
    else if (k == "-h" || k == "--help") {
      std::puts("bench_runtime [--model PATH] [--threads N] [--prefill 128,512] [--decode 128] [--context 256] "
                "[--reps 3] [--no-random] [--json]");
      std::exit(0);
    } else {
      mlar::fail("bench_runtime: unknown argument {}", k);
    }
  }
  if (a.model.empty()) {
    const char* env = std::getenv("MLAR_DATA");
    a.model = std::string(env && *env ? env : "../shared/data") + "/models/stories260K/stories260K.bin";
  }
  return a;
}

std::vector<int32_t> token_stream(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(3 + (i * 7919) % (vocab - 3));
  ids[0] = 1;
  return ids;
}

double seconds(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

struct Row {
  std::string model, phase;
  int64_t tokens = 0, context = 0;
  double seconds = 0, tok_s = 0;
};

void bench_model(const std::string& name, const mlar::Model& m, const Args& a, std::vector<Row>& rows) {
  const int64_t V = m.config.vocab_size, limit = m.config.max_position_embeddings;
  mlar::Session s(m);
  s.prefill(token_stream(8, V));  // warm-up (allocations, BLAS buffers)
  for (int64_t p : a.prefill) {
    if (p > limit) continue;
    const auto ids = token_stream(p, V);
    double best = 1e30;
    for (int r = 0; r < a.reps; ++r) {
      s.reset();
      const auto t0 = clock_type::now();
      s.prefill(ids);
      best = std::min(best, seconds(t0));
    }
    rows.push_back({name, "prefill", p, 0, best, static_cast<double>(p) / best});
  }
  const int64_t ctx = std::min(a.context, limit - a.decode);
  if (ctx >= 1 && a.decode > 0) {
    const auto ids = token_stream(ctx + a.decode, V);
    double best = 1e30;
    for (int r = 0; r < a.reps; ++r) {
      s.reset();
      s.prefill(std::span<const int32_t>(ids.data(), static_cast<size_t>(ctx)));
      const auto t0 = clock_type::now();
      for (int64_t i = 0; i < a.decode; ++i) s.decode(ids[static_cast<size_t>(ctx + i)]);
      best = std::min(best, seconds(t0));
    }
    rows.push_back({name, "decode", a.decode, ctx, best, static_cast<double>(a.decode) / best});
  }
  if (!a.json)
    fmt::print(stderr, "{}: KV cache {:.1f} KiB per token, {} threads\n", name,
               static_cast<double>(s.cache().bytes_per_token()) / 1024.0, mlar::ops::cpu_threads());
}

mlar::ModelConfig llama_bench_config() {
  mlar::ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 32000;
  c.hidden_size = 1024;
  c.intermediate_size = 2816;
  c.num_layers = 8;
  c.num_heads = 16;
  c.num_kv_heads = 4;
  c.head_dim = 64;
  c.max_position_embeddings = 2048;
  c.rope_layout = mlar::RopeLayout::Half;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    mlar::ops::set_cpu_threads(a.threads);
    std::vector<Row> rows;
    if (std::filesystem::exists(a.model)) {
      // Any format the CLI reads (HF directory, GGUF, llama2.c), weights in their file's dtype.
      const std::string name = std::filesystem::path(a.model).stem().string();
      bench_model(name.empty() ? a.model : name, mlar::load_model(a.model), a, rows);
    } else {
      fmt::print(stderr, "bench_runtime: {} not found, skipping stories260K (set MLAR_DATA or --model)\n", a.model);
    }
    if (a.random) {
      const auto t0 = clock_type::now();
      const mlar::Model m = mlar::random_model(llama_bench_config(), 1);
      if (!a.json) fmt::print(stderr, "random llama-1024x8: built in {:.1f} s\n", seconds(t0));
      bench_model("random-llama-1024x8", m, a, rows);
    }
    if (a.json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& r : rows)
        j.push_back({{"model", r.model}, {"phase", r.phase}, {"tokens", r.tokens}, {"context", r.context},
                     {"seconds", r.seconds}, {"tokens_per_s", r.tok_s}, {"threads", mlar::ops::cpu_threads()}});
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("{:<22} {:<8} {:>7} {:>8} {:>10} {:>10}\n", "model", "phase", "tokens", "context", "seconds", "tok/s");
      for (const auto& r : rows)
        fmt::print("{:<22} {:<8} {:>7} {:>8} {:>10.4f} {:>10.1f}\n", r.model, r.phase, r.tokens, r.context, r.seconds,
                   r.tok_s);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
  return 0;
}
