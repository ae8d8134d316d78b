// bench_cuda_attention: the decode attention kernels of the CUDA backend alone
// (ops/cuda/attention.h), in GB/s of cache read per call against the device-to-device
// copy bandwidth measured in the same run (bytes read + written per second).
//
//   bench_cuda_attention [--forms deepseek,mla25,mla50,gqa] [--contexts 1024,4096,16384,65536]
//                        [--batches 1,8,64] [--reps 10] [--min-mib 512] [--max-gib 24]
//                        [--paths auto,tiled] [--json FILE]
//
// Forms (BF16 caches, one query token per sequence, batch sequences of equal length):
//   deepseek  DeepSeek-V3's absorbed MLA: 128 heads over rows [c (512) | k_pe (64)]
//   mla50     a Llama-3-8B shape (32 heads of 128, 8 kv heads) converted at 50%: r 960 + d_r 64
//   mla25     the same at 25%: r 448 + d_r 64
//   gqa       that Llama-3-8B shape unconverted: K and V rows of 8 x 128 each
// Each call is one layer's decode step. Layers are distinct buffers (at least
// --min-mib in all, so no call finds its cache in L2), called in turn; reported is
// the median over --reps passes. Cases above --max-gib of cache are skipped.
// --paths tiled also times the generic tiled kernel on the MLA forms.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "io/json_file.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/device.h"
#include "util/error.h"
#include "util/half.h"

namespace {

using namespace mlar;
using json = nlohmann::json;

struct Form {
  std::string name;
  int64_t n_heads, n_kv, dk, dv;
  bool shared;  // MLA: one row set, keys the whole row, values the first dv columns
  int64_t row_elems() const { return shared ? dk : n_kv * (dk + dv); }
};

const std::vector<Form> kForms = {
    {"deepseek", 128, 1, 576, 512, true},
    {"mla50", 32, 1, 1024, 960, true},
    {"mla25", 32, 1, 512, 448, true},
    {"gqa", 32, 8, 128, 128, false},
};

struct Args {
  std::vector<std::string> forms{"deepseek", "mla50", "mla25", "gqa"};
  std::vector<int64_t> contexts{1024, 4096, 16384, 65536};
  std::vector<int64_t> batches{1, 8, 64};
  std::vector<std::string> paths{"auto"};
  int reps = 10;
  int64_t min_mib = 512, max_gib = 24;
  std::string json_out;
};

const char* kUsage =
    "bench_cuda_attention [--forms deepseek,mla50,mla25,gqa] [--contexts 1024,4096,16384,65536]\n"
    "                     [--batches 1,8,64] [--reps 10] [--min-mib 512] [--max-gib 24] [--paths auto,tiled]\n"
    "                     [--json FILE]\n";

Args parse(int argc, char** argv) {
  Args a;
  bench::parse_pairs(argc, argv, "bench_cuda_attention", kUsage, [&](const std::string& k, const std::string& v) {
    if (k == "--forms") a.forms = bench::split_list(v);
    else if (k == "--contexts") a.contexts = bench::int_list(v, k);
    else if (k == "--batches") a.batches = bench::int_list(v, k);
    else if (k == "--paths") a.paths = bench::split_list(v);
    else if (k == "--reps") a.reps = std::stoi(v);
    else if (k == "--min-mib") a.min_mib = std::stoll(v);
    else if (k == "--max-gib") a.max_gib = std::stoll(v);
    else if (k == "--json") a.json_out = v;
    else return false;
    return true;
  });
  for (const auto& f : a.forms)
    if (std::none_of(kForms.begin(), kForms.end(), [&](const Form& x) { return x.name == f; }))
      fail("bench_cuda_attention: unknown form '{}' (deepseek, mla50, mla25, gqa)", f);
  for (const auto& p : a.paths)
    if (p != "auto" && p != "tiled") fail("bench_cuda_attention: unknown path '{}' (auto, tiled)", p);
  return a;
}

// Fills `bytes` of device memory with bf16 normal values (one random block, repeated).
void fill_bf16(void* dst, size_t bytes) {
  static std::vector<uint16_t> block;
  if (block.empty()) {
    std::mt19937_64 rng(7);
    std::normal_distribution<float> d(0.0f, 1.0f);
    block.resize(size_t{1} << 24);  // 32 MiB
    for (auto& x : block) x = f32_to_bf16(d(rng));
  }
  const size_t bb = block.size() * 2;
  for (size_t off = 0; off < bytes; off += bb)
    cuda::upload(static_cast<char*>(dst) + off, block.data(), std::min(bb, bytes - off));
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  cuda::require_device("bench_cuda_attention");
  const cuda::DeviceInfo info = cuda::device_info();
  const double copy_gbs = cuda::copy_bandwidth_gbs(size_t{1} << 30, 10);
  fmt::print("{} (sm_{}{}, {} SMs, driver {}, runtime {}): device-to-device copy {:.0f} GB/s (read + write)\n",
             info.name, info.cc_major, info.cc_minor, info.sm_count, info.driver_version, info.runtime_version,
             copy_gbs);
  json rows = json::array();
  fmt::print("{:<9} {:>6} {:>5} {:>6} {:>6} {:>10} {:>9} {:>9} {:>7}\n", "form", "ctx", "batch", "path", "splits",
             "MiB/call", "us/call", "GB/s", "of copy");
  for (const auto& fname : args.forms) {
    const Form f = *std::find_if(kForms.begin(), kForms.end(), [&](const Form& x) { return x.name == fname; });
    for (int64_t batch : args.batches) {
      for (int64_t ctx : args.contexts) {
        const size_t layer_bytes = static_cast<size_t>(batch * ctx * f.row_elems()) * 2;
        if (layer_bytes > static_cast<size_t>(args.max_gib) << 30) continue;
        const int64_t layers = std::max<int64_t>(
            2, static_cast<int64_t>(((static_cast<size_t>(args.min_mib) << 20) + layer_bytes - 1) / layer_bytes));
        cuda::DeviceBuffer cache(layer_bytes * static_cast<size_t>(layers));
        fill_bf16(cache.data(), cache.bytes());
        std::vector<float> qh(static_cast<size_t>(batch * f.n_heads * f.dk));
        std::mt19937_64 rng(11);
        std::normal_distribution<float> d(0.0f, 1.0f);
        for (auto& x : qh) x = d(rng);
        cuda::DeviceBuffer q(qh.size() * 4), out(static_cast<size_t>(batch * f.n_heads * f.dv) * 4);
        cuda::upload(q.data(), qh.data(), qh.size() * 4);
        ops::AttentionDims dims;
        dims.n_q = 1;
        dims.n_heads = f.n_heads;
        dims.n_kv_heads = f.n_kv;
        dims.dk = f.dk;
        dims.dv = f.dv;
        dims.q_start = ctx - 1;
        dims.scale = 0.05f;
        const cuda::AttentionBatch b{batch, f.n_heads * f.dk, ctx * f.row_elems(), f.n_heads * f.dv};
        for (const auto& path : args.paths) {
          if (path == "tiled" && !f.shared) continue;
          if (path == "tiled") setenv("MLAR_CUDA_ATTN", "tiled", 1);
          auto rows_of = [&](int64_t l) {
            const char* base = static_cast<const char*>(cache.data()) + static_cast<size_t>(l) * layer_bytes;
            ops::TypedRows k{base, DType::BF16, f.row_elems()};
            ops::TypedRows v{f.shared ? base : base + f.n_kv * f.dk * 2, DType::BF16, f.row_elems()};
            return std::pair{k, v};
          };
          auto [k0, v0] = rows_of(0);
          const auto used = cuda::attention_path(k0, v0, dims);
          const cuda::AttentionPlan plan = cuda::attention_plan(k0, v0, dims, b);
          auto pass = [&] {
            for (int64_t l = 0; l < layers; ++l) {
              auto [k, v] = rows_of(l);
              cuda::attention(q.as<float>(), k, v, out.as<float>(), dims, b);
            }
          };
          pass();  // warm-up
          cuda::synchronize();
          std::vector<double> us;
          cuda::EventTimer t;
          for (int r = 0; r < args.reps; ++r) {
            t.start();
            pass();
            us.push_back(t.stop_ms() * 1e3 / static_cast<double>(layers));
          }
          unsetenv("MLAR_CUDA_ATTN");
          std::sort(us.begin(), us.end());
          const double med = us[us.size() / 2];
          const double gbs = static_cast<double>(layer_bytes) / (med * 1e-6) / 1e9;
          const std::string pname = used == cuda::AttentionPath::TensorCore ? "tc" : "tiled";
          fmt::print("{:<9} {:>6} {:>5} {:>6} {:>6} {:>10.1f} {:>9.1f} {:>9.0f} {:>6.0f}%\n", f.name, ctx, batch, pname,
                     plan.splits, static_cast<double>(layer_bytes) / (1 << 20), med, gbs, 100.0 * gbs / copy_gbs);
          rows.push_back({{"form", f.name}, {"context", ctx}, {"batch", batch}, {"path", pname}, {"splits", plan.splits},
                          {"n_heads", f.n_heads}, {"n_kv_heads", f.n_kv}, {"dk", f.dk}, {"dv", f.dv},
                          {"bytes_per_call", layer_bytes}, {"us_per_call", med}, {"gbs", gbs},
                          {"of_copy", gbs / copy_gbs}});
        }
      }
    }
  }
  if (!args.json_out.empty()) {
    json j{{"bench", "bench_cuda_attention"},
           {"device", {{"name", info.name}, {"cc", fmt::format("{}.{}", info.cc_major, info.cc_minor)},
                       {"sm_count", info.sm_count}, {"driver", info.driver_version},
                       {"runtime", info.runtime_version}, {"copy_gbs", copy_gbs}}},
           {"rows", rows}};
    write_json_file(args.json_out, j, true);
  }
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
