// bench_cuda_decode: end-to-end decode tokens/s of the CUDA runtime (CudaSession)
// against context, for a Llama-3-8B-shaped model (hidden 4096, 32 query / 8 kv heads
// of 128, FFN 14336, vocab 128256; --layers of its 32) with BF16 weights and cache:
//
//   gqa      the GQA source
//   repeat   its exact MLA retrofit, absorbed (r = 1024 latent = the K rows, 8 rope
//            heads of 128, W_qr per head): the same cache bytes as GQA
//   mla50    the 50% DeepSeek layout our converter gives it (r 960 + d_r 64, d_n 128)
//   mla25    the 25% one (r 448 + d_r 64, d_n 128)
//
// Weights are random (speed does not depend on their values). Each context is reached
// with advance_zero (rows of zeros, read like any others), then --decode steps are
// timed (device synchronised, logits copied to the host, as generation does).
// Reported: tokens/s, and the bytes a step must read (weights + KV cache) per second
// against the device-to-device copy bandwidth measured in the same run.
//
//   bench_cuda_decode [--forms gqa,repeat,mla50,mla25] [--contexts 1024,8192,32768]
//                     [--layers 4] [--decode 32] [--json FILE]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "io/json_file.h"
#include "ops/cuda/device.h"
#include "runtime/cuda/cuda_session.h"
#include "runtime/random_mla_model.h"
#include "runtime/random_model.h"
#include "util/error.h"

namespace {

using namespace mlar;
using json = nlohmann::json;

struct Args {
  std::vector<std::string> forms{"gqa", "repeat", "mla50", "mla25"};
  std::vector<int64_t> contexts{1024, 8192, 32768};
  int64_t layers = 4, decode = 32;
  std::string json_out;
};

const char* kUsage =
    "bench_cuda_decode [--forms gqa,repeat,mla50,mla25] [--contexts 1024,8192,32768] [--layers 4] [--decode 32]\n"
    "                  [--json FILE]\n";

Args parse(int argc, char** argv) {
  Args a;
  bench::parse_pairs(argc, argv, "bench_cuda_decode", kUsage, [&](const std::string& k, const std::string& v) {
    if (k == "--forms") a.forms = bench::split_list(v);
    else if (k == "--contexts") a.contexts = bench::int_list(v, k);
    else if (k == "--layers") a.layers = std::stoll(v);
    else if (k == "--decode") a.decode = std::stoll(v);
    else if (k == "--json") a.json_out = v;
    else return false;
    return true;
  });
  for (const auto& f : a.forms)
    if (f != "gqa" && f != "repeat" && f != "mla50" && f != "mla25")
      fail("bench_cuda_decode: unknown form '{}' (gqa, repeat, mla50, mla25)", f);
  return a;
}

ModelConfig config_of(const std::string& form, int64_t layers, int64_t max_pos) {
  ModelConfig c = bench::llama_shape(4096, layers, 32, 8, 128, 14336, 128256, max_pos);
  c.rope_theta = 500000.0;
  // Tied output head: the same bytes per step as Llama-3-8B's own head, half the random draws.
  c.tie_word_embeddings = true;
  if (form == "gqa") return c;
  MlaConfig m;
  if (form == "repeat") {
    m.rope_mode = RopeMode::Repeat;
    m.kv_lora_rank = 8 * 128;
    m.qk_nope_head_dim = 0;
    m.qk_rope_head_dim = 128;
    m.num_rope_heads = 8;
    m.v_head_dim = 128;
    m.q_rope_in_dim = 128;
  } else {
    m.rope_mode = RopeMode::Extend;
    m.kv_lora_rank = form == "mla50" ? 960 : 448;
    m.qk_nope_head_dim = 128;
    m.qk_rope_head_dim = 64;
    m.num_rope_heads = 1;
    m.v_head_dim = 128;
    m.latent_norm = true;
  }
  m.softmax_scale = 1.0 / std::sqrt(128.0);
  c.mla = m;
  return c;
}

// The random model with every tensor rounded to BF16 (as a real checkpoint keeps it).
Model bf16_model(const ModelConfig& c) {
  Model m = c.mla ? random_mla_model(c, 1) : random_model(c, 1);
  auto cast = [](TypedTensor& t) {
    if (!t.empty()) t = t.cast(DType::BF16);
  };
  cast(m.weights.embed);
  cast(m.weights.lm_head);
  for (auto& L : m.weights.layers)
    for (TypedTensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down, &L.mla.wq, &L.mla.wq_b,
                           &L.mla.wqr, &L.mla.w_dkv, &L.mla.w_kr, &L.mla.w_uk, &L.mla.w_uv, &L.mla.wo})
      cast(*t);
  return m;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  cuda::require_device("bench_cuda_decode");
  const cuda::DeviceInfo info = cuda::device_info();
  const double copy_gbs = cuda::copy_bandwidth_gbs(size_t{1} << 30, 10);
  fmt::print("{}: copy {:.0f} GB/s; Llama-3-8B shape, {} of 32 layers, BF16 weights and cache\n", info.name,
             copy_gbs, args.layers);
  const int64_t max_ctx = *std::max_element(args.contexts.begin(), args.contexts.end()) + args.decode + 1;
  json rows = json::array();
  fmt::print("{:<7} {:>7} {:>10} {:>10} {:>9} {:>8} {:>8}\n", "form", "ctx", "KiB/token", "GB/step", "tok/s",
             "GB/s", "of copy");
  for (const auto& form : args.forms) {
    const auto t0 = std::chrono::steady_clock::now();
    const Model m = bf16_model(config_of(form, args.layers, max_ctx));
    SessionOptions o;
    o.max_tokens = max_ctx;
    o.kv_dtype = DType::BF16;
    CudaSession s(m, o);
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int64_t ctx : args.contexts) {
      s.reset();
      s.advance_zero(ctx);
      int32_t tok = 1;
      s.decode(tok);  // warm-up
      const auto a = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < args.decode; ++i) s.decode(tok);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
      const double tps = static_cast<double>(args.decode) / secs;
      const double kv = static_cast<double>(s.kv_bytes_per_token());
      const double step_bytes = static_cast<double>(s.weight_bytes()) + kv * static_cast<double>(ctx + 1);
      const double gbs = step_bytes * tps / 1e9;
      fmt::print("{:<7} {:>7} {:>10.1f} {:>10.3f} {:>9.1f} {:>8.0f} {:>7.0f}%\n", form, ctx, kv / 1024,
                 step_bytes / 1e9, tps, gbs, 100.0 * gbs / copy_gbs);
      rows.push_back({{"form", form}, {"context", ctx}, {"layers", args.layers}, {"kv_bytes_per_token", kv},
                      {"weight_bytes", s.weight_bytes()}, {"step_bytes", step_bytes}, {"tokens_per_s", tps},
                      {"gbs", gbs}, {"of_copy", gbs / copy_gbs}, {"attention", s.attention_kind()},
                      {"build_seconds", build_s}});
    }
  }
  if (!args.json_out.empty())
    write_json_file(args.json_out,
                    json{{"bench", "bench_cuda_decode"},
                         {"device", {{"name", info.name}, {"copy_gbs", copy_gbs}, {"driver", info.driver_version}}},
                         {"rows", rows}},
                    true);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
