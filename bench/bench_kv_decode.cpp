// bench_kv_decode: the decode attention kernel alone (ops/kv_attention.h), in GB/s of
// cache read per call against the read bandwidth measured in the same run.
//
//   bench_kv_decode [--contexts 512,16384] [--kv-dtypes f32,bf16] [--forms gqa,gqa-rows,mla,mla-8b,deepseek]
//                   [--threads N] [--reps 3] [--min-mib 512] [--json FILE]
//
// Forms (bench_context's random model, one layer per call):
//   gqa  16 query heads, 4 kv heads of 64: K and V [4, T, 64] each, head-major as
//        the runtime's GQA cache keeps them;
//   gqa-rows  the same, rows [T, 4 * 64] (each token's kv heads side by side).
//   mla  the 25% compressed form absorbed: 16 heads over one row [c | k_pe] of
//        r = 96 + d_r = 32 per token; keys the whole row, values c.
//   mla-8b  the same for what the converter gives a Llama-3-8B shape at 25%: 32 heads
//        over r = 448 + d_r = 64 (bench_cuda_attention's mla25).
//   deepseek  DeepSeek-V3's absorbed MLA: 128 heads over r = 512 + d_r = 64.
// MLA rows also report multiply-adds per second: heads x (dk + dv) per cached row.
// Each call is one layer's decode step (n_q = 1, context T). Layers are distinct
// buffers, at least --min-mib in all, called in turn, so every call reads its cache
// from memory as a decode step does (the weights evict it between layers). Reported:
// cache bytes per call / time per call (best of --reps passes over all layers), and
// its ratio to the read bandwidth; and the same bytes per CPU second per thread, which
// on a machine busy with other work says what the kernel does while it runs.
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "io/json_file.h"
#include "ops/cpu_features.h"
#include "ops/kv_attention.h"
#include "ops/threads.h"
#include "tensor/dtype.h"
#include "util/error.h"

namespace {

using namespace mlar;

// CPU seconds of this process (all threads): on a machine shared with other work,
// bytes / (CPU time / threads) says what the kernel does when it runs.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
using bench::clock_type;
using json = nlohmann::json;

struct Args {
  std::vector<int64_t> contexts{512, 16384};
  std::vector<DType> kv_dtypes{DType::F32, DType::BF16};
  std::vector<std::string> forms{"gqa", "gqa-rows", "mla"};
  int threads = 0, reps = 3;
  int64_t min_mib = 512;
  std::string json_out;
};

const char* kUsage =
    "bench_kv_decode [--contexts 512,16384] [--kv-dtypes f32,bf16] [--forms gqa,gqa-rows,mla,mla-8b,deepseek]\n"
    "                [--threads N]\n"
    "                [--reps 3] [--min-mib 512] [--json FILE]\n"
    "GB/s of cache the decode attention kernel reads, against the read bandwidth.\n";

Args parse(int argc, char** argv) {
  Args a;
  bench::parse_args(argc, argv, "bench_kv_decode", kUsage, [&](const std::string& k, auto& val) {
    if (k == "--contexts") a.contexts = bench::int_list(val(), k);
    else if (k == "--threads") a.threads = std::stoi(val());
    else if (k == "--reps") a.reps = static_cast<int>(bench::int_list(val(), k).front());
    else if (k == "--min-mib") a.min_mib = bench::int_list(val(), k).front();
    else if (k == "--json") a.json_out = val();
    else if (k == "--kv-dtypes") {
      a.kv_dtypes.clear();
      for (const auto& s : bench::split_list(val())) a.kv_dtypes.push_back(parse_write_dtype(s, k));
    } else if (k == "--forms") {
      a.forms = bench::split_list(val());
      for (const auto& f : a.forms)
        if (f != "gqa" && f != "gqa-rows" && f != "mla" && f != "mla-8b" && f != "deepseek")
          fail("--forms: unknown form '{}' (gqa, gqa-rows, mla, mla-8b, deepseek)", f);
    } else return false;
    return true;
  });
  return a;
}

struct Shape {
  int64_t heads, kv_heads, dk, dv, k_cols, v_cols;  // k_cols / v_cols: values per token of each array
  bool shared;                                     // one array: keys and values are the same rows
  bool head_major;                                 // [kv_heads, T, d] rather than [T, kv_heads, d]
};

Shape shape_of(const std::string& form) {
  if (form == "gqa") return {16, 4, 64, 64, 4 * 64, 4 * 64, false, true};
  if (form == "gqa-rows") return {16, 4, 64, 64, 4 * 64, 4 * 64, false, false};
  if (form == "mla-8b") return {32, 1, 448 + 64, 448, 448 + 64, 0, true, false};
  if (form == "deepseek") return {128, 1, 512 + 64, 512, 512 + 64, 0, true, false};
  return {16, 1, 96 + 32, 96, 96 + 32, 0, true, false};
}

json run(const Args& a, const std::string& form, DType t, int64_t T, double bandwidth) {
  const Shape s = shape_of(form);
  const int64_t es = static_cast<int64_t>(dtype_size(t));
  const int64_t layer_bytes = T * (s.k_cols + s.v_cols) * es;
  const int64_t layers = std::max<int64_t>(4, (a.min_mib << 20) / layer_bytes + 1);
  // One buffer of every layer's rows: keys then values per layer.
  const int64_t per_layer = T * (s.k_cols + s.v_cols);
  std::vector<uint16_t> half;
  std::vector<float> full;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  if (t == DType::F32) {
    full.resize(static_cast<size_t>(layers * per_layer));
    for (auto& x : full) x = u(rng);
  } else {
    half.resize(static_cast<size_t>(layers * per_layer));
    std::vector<float> row(4096);
    for (size_t i = 0; i < half.size(); i += row.size()) {
      const size_t n = std::min(row.size(), half.size() - i);
      for (size_t k = 0; k < n; ++k) row[k] = u(rng);
      convert_values(row.data(), DType::F32, half.data() + i, t, static_cast<int64_t>(n));
    }
  }
  auto base = [&](int64_t l, int64_t col) -> const void* {
    const int64_t off = l * per_layer + col;
    return t == DType::F32 ? static_cast<const void*>(full.data() + off) : static_cast<const void*>(half.data() + off);
  };
  std::vector<float> q(static_cast<size_t>(s.heads * s.dk)), out(static_cast<size_t>(s.heads * s.dv));
  for (auto& x : q) x = u(rng);
  ops::AttentionDims d;
  d.n_q = 1;
  d.n_heads = s.heads;
  d.n_kv_heads = s.kv_heads;
  d.dk = s.dk;
  d.dv = s.dv;
  d.q_start = T - 1;
  d.scale = 1.0f / std::sqrt(static_cast<float>(s.dk));
  if (s.head_major) {
    d.k_head_stride = T * s.dk;
    d.v_head_stride = T * s.dv;
  }
  auto call = [&](int64_t l) {
    if (s.shared) {
      const ops::TypedRows rows{base(l, 0), t, s.k_cols};
      ops::kv_decode_attention(q.data(), rows, rows, out.data(), d);
    } else {
      const int64_t kd = s.head_major ? s.dk : s.k_cols, vd = s.head_major ? s.dv : s.v_cols;
      const ops::TypedRows k{base(l, 0), t, kd}, v{base(l, T * s.k_cols), t, vd};
      ops::kv_attention(q.data(), k, v, out.data(), d);
    }
  };
  for (int64_t l = 0; l < layers; ++l) call(l);  // warm-up: pages, thread pool
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < a.reps; ++r) {
    const auto t0 = clock_type::now();
    const double c0 = cpu_seconds();
    for (int64_t l = 0; l < layers; ++l) call(l);
    best = std::min(best, bench::seconds_since(t0) / static_cast<double>(layers));
    best_cpu = std::min(best_cpu, (cpu_seconds() - c0) / static_cast<double>(layers * ops::cpu_threads()));
  }
  const double gbs = static_cast<double>(layer_bytes) / best / 1e9;
  const double cpu_gbs = static_cast<double>(layer_bytes) / best_cpu / 1e9;
  const double macs = s.shared ? static_cast<double>(s.heads * (s.dk + s.dv) * T) / best : 0.0;
  fmt::print(stderr,
             "  {:<8} {:<4} ctx {:>6}: {:8.1f} us/layer  {:6.1f} GB/s  {:4.0f}% of read bandwidth  (CPU time: {:6.1f} "
             "GB/s; {} layers){}\n",
             form, dtype_flag_name(t), T, best * 1e6, gbs, 100.0 * gbs * 1e9 / bandwidth, cpu_gbs, layers,
             macs > 0 ? fmt::format("  {:.1f} G multiply-adds/s", macs / 1e9) : "");
  return {{"form", form},
          {"kv_dtype", dtype_flag_name(t)},
          {"context", T},
          {"us_per_layer", best * 1e6},
          {"cache_bytes_per_layer", layer_bytes},
          {"gb_per_s", gbs},
          {"fraction_of_bandwidth", gbs * 1e9 / bandwidth},
          {"macs_per_s", macs},
          {"gb_per_cpu_s_per_thread", cpu_gbs},
          {"layers", layers}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    ops::set_cpu_threads(a.threads);
    const double bw = bench::read_bandwidth(ops::cpu_threads());
    fmt::print(stderr, "read bandwidth {:.1f} GB/s, {} threads, cpu level {}\n", bw / 1e9, ops::cpu_threads(),
               ops::cpu_level_name(ops::cpu_active_level()));
    json rows = json::array();
    for (const auto& form : a.forms)
      for (DType t : a.kv_dtypes)
        for (int64_t T : a.contexts) rows.push_back(run(a, form, t, T, bw));
    json out = {{"benchmark", "kv_decode"},
                {"threads", ops::cpu_threads()},
                {"cpu_level", ops::cpu_level_name(ops::cpu_active_level())},
                {"machine", bench::machine_json()},
                {"read_bandwidth_bytes_per_s", bw},
                {"rows", std::move(rows)}};
    if (a.json_out.empty()) fmt::print("{}\n", out.dump(2));
    else write_json_file(a.json_out, out, true);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
