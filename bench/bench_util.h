// Helpers shared by the benchmark programs (bench/): timing, argument lists,
// synthetic token streams and the random-model shapes they use.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "model/config.h"
#include "util/error.h"

#include <fmt/format.h>

namespace mlar::bench {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Walks argv: on(key, value) handles one option, calling value() for its argument,
// and returns false for a key it does not know. -h / --help prints `usage`, exits 0.
template <class F>
void parse_args(int argc, char** argv, const char* program, const char* usage, F on) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("{}: {} needs a value", program, k);
      return argv[++i];
    };
    if (!on(k, value)) fail("{}: unknown argument {} (see --help)", program, k);
  }
}

// "a,b,c" -> {"a", "b", "c"} (or another separator).
// Walks "--key value" pairs of argv: --help / -h prints `usage` and exits 0; a key with
// no value, or one `set` does not know (returns false), fails naming `prog` and the usage.
inline void parse_pairs(int argc, char** argv, const char* prog, const char* usage,
                        const std::function<bool(const std::string& key, const std::string& value)>& set) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      fmt::print("{}", usage);
      std::exit(0);
    }
    if (i + 1 >= argc) fail("{}: {} needs a value\n{}", prog, k, usage);
    if (!set(k, argv[++i])) fail("{}: unknown option {}\n{}", prog, k, usage);
  }
}

inline std::vector<std::string> split_list(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

inline std::vector<int64_t> int_list(const std::string& s, const std::string& option) {
  std::vector<int64_t> out;
  for (const auto& x : split_list(s)) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(x, &used));
      if (used != x.size() || out.back() <= 0) throw std::invalid_argument(x);
    } catch (const std::exception&) {
      fail("{}: expected positive integers separated by commas, got '{}'", option, s);
    }
  }
  if (out.empty()) fail("{}: empty list", option);
  return out;
}

// A deterministic token stream (BOS first) inside [3, vocab).
inline std::vector<int32_t> token_stream(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(3 + (i * 7919) % (vocab - 3));
  if (n > 0) ids[0] = 1;
  return ids;
}

// A Llama-shaped GQA config: hidden, layers, heads, kv heads, head size,
// intermediate size, vocabulary.
inline ModelConfig llama_shape(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads, int64_t head_dim,
                               int64_t ffn, int64_t vocab, int64_t max_pos) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = ffn;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position_embeddings = max_pos;
  return c;
}

// "H,L,NH,NKV,D,F,V" (as --shape takes it) -> llama_shape.
inline ModelConfig parse_shape(const std::string& s, int64_t max_pos) {
  const auto v = int_list(s, "--shape");
  if (v.size() != 7) fail("--shape: expected hidden,layers,heads,kv_heads,head_dim,ffn,vocab, got '{}'", s);
  return llama_shape(v[0], v[1], v[2], v[3], v[4], v[5], v[6], max_pos);
}

// The machine a benchmark ran on: CPU model, cores online, memory, kernel.
inline nlohmann::json machine_json() {
  std::string cpu = "unknown", mem = "unknown", line;
  std::ifstream ci("/proc/cpuinfo");
  while (std::getline(ci, line))
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  std::ifstream mi("/proc/meminfo");
  while (std::getline(mi, line))
    if (line.rfind("MemTotal:", 0) == 0) {
      std::istringstream ss(line.substr(9));
      double kb = 0;
      ss >> kb;
      mem = std::to_string(static_cast<int>(std::lround(kb / (1 << 20)))) + " GiB";
      break;
    }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return {{"cpu", cpu}, {"cores", sysconf(_SC_NPROCESSORS_ONLN)}, {"memory", mem}, {"host", host}};
}

// Read bandwidth of this machine with `threads` threads: the best of 5 sums over
// a 1 GiB array (far beyond the CPU caches), in bytes per second. Integer sums,
// which the compiler vectorises, so the loop waits on memory, not on adds.
inline double read_bandwidth(int threads) {
  const size_t n = size_t{1} << 27;
  std::vector<uint64_t> a(n, 1);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<uint64_t> part(static_cast<size_t>(threads));
    const auto t0 = clock_type::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const size_t lo = n * static_cast<size_t>(t) / static_cast<size_t>(threads),
                     hi = n * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
        // Four streams per thread (as a matrix-vector kernel reads several rows at
        // once), each with its own accumulator.
        const size_t q = (hi - lo) / 4;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i < q; ++i) {
          s0 += a[lo + i];
          s1 += a[lo + q + i];
          s2 += a[lo + 2 * q + i];
          s3 += a[lo + 3 * q + i];
        }
        for (size_t i = lo + 4 * q; i < hi; ++i) s0 += a[i];
        part[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
      });
    for (auto& th : pool) th.join();
    const double s = bench::seconds_since(t0);
    uint64_t total = 0;
    for (uint64_t p : part) total += p;
    if (total != n) fail("read_bandwidth: sum {} != {}", total, n);  // also keeps the loads
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / s);
  }
  return best;
}

}  // namespace mlar::bench
