// bench_mla: decode tokens/s of GQA against MLA evaluated naively and absorbed, and
// the naive/absorbed sweep behind MlaEval::Auto.
//
//   bench_mla [--threads N] [--contexts 512,1024,2048,4096] [--decode 8] [--reps 2]
//             [--models gqa,repeat,repeat-absorbed,deepseek] [--sweep] [--json]
//
// Models: a random Llama-shaped GQA model (hidden 1024, 8 layers, 16 heads, 4 kv
// heads of 64, intermediate 2816, vocab 32000) and MLA forms of it:
//   repeat           the exact repeat retrofit (convert_repeat): r = 256, n_r = 4, d_r = 64
//   repeat-absorbed  the same with stored absorption (absorb)
//   deepseek         random DeepSeek-like MLA: r = 64, n_r = 1, d_r = 32, d_n = 32, d_v = 64,
//                    latent norm (cache 96 values per token and layer; GQA: 512)
// Decode: each model's cache is filled once by a prefill of the longest context,
// then for every context C the cache is cut back to C and --decode tokens are timed
// one at a time (best of --reps) with each evaluation.
// --sweep: forward calls of n tokens after `cached` ones, naive against absorbed, on
// the 1024-hidden repeat and deepseek models and on a stories260K-sized repeat model
// (hidden 64, 5 layers, 8 heads, 4 kv heads of 8): the numbers behind the Auto rule.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "convert/absorb.h"
#include "convert/repeat.h"
#include "ops/threads.h"
#include "runtime/decoder.h"
#include "runtime/random_mla_model.h"
#include "runtime/random_model.h"
#include "util/error.h"

namespace {

using mlar::bench::clock_type;
using mlar::bench::token_stream;

const char* kUsage =
    "bench_mla [--threads N] [--contexts 512,1024,2048,4096] [--decode 8] [--reps 2]\n"
    "          [--models gqa,repeat,repeat-absorbed,deepseek] [--sweep] [--json]\n";

struct Args {
  int threads = 0;
  std::vector<int64_t> contexts{512, 1024, 2048, 4096};
  int64_t decode = 8;
  int reps = 2;
  std::vector<std::string> models{"gqa", "repeat", "repeat-absorbed", "deepseek"};
  bool sweep = false;
  bool json = false;
};

Args parse(int argc, char** argv) {
  Args a;
  mlar::bench::parse_args(argc, argv, "bench_mla", kUsage, [&](const std::string& k, auto& val) {
    if (k == "--threads") a.threads = std::stoi(val());
    else if (k == "--contexts") a.contexts = mlar::bench::int_list(val(), k);
    else if (k == "--decode") a.decode = std::max<int64_t>(1, std::stoll(val()));
    else if (k == "--reps") a.reps = std::max(1, std::stoi(val()));
    else if (k == "--models") a.models = mlar::bench::split_list(val());
    else if (k == "--sweep") a.sweep = true;
    else if (k == "--json") a.json = true;
    else return false;
    return true;
  });
  return a;
}

mlar::ModelConfig gqa_config(int64_t max_pos) {
  return mlar::bench::llama_shape(1024, 8, 16, 4, 64, 2816, 32000, max_pos);
}

// DeepSeek-like MLA of the same source shapes: r 64, one rope head of 32, d_n 32, d_v 64.
mlar::ModelConfig deepseek_config(mlar::ModelConfig c) {
  mlar::MlaConfig m;
  m.rope_mode = mlar::RopeMode::Extend;
  m.kv_lora_rank = 64;
  m.qk_nope_head_dim = 32;
  m.qk_rope_head_dim = 32;
  m.num_rope_heads = 1;
  m.v_head_dim = 64;
  m.latent_norm = true;
  m.softmax_scale = 1.0 / std::sqrt(64.0);
  c.mla = m;
  return c;
}

// The stories260K shapes (hidden 64, 5 layers, 8 heads, 4 kv heads of 8, vocab 512).
mlar::ModelConfig stories_config(int64_t max_pos) {
  return mlar::bench::llama_shape(64, 5, 8, 4, 8, 172, 512, max_pos);
}

struct Entry {
  std::string name;
  std::unique_ptr<mlar::Model> model;
};

std::unique_ptr<mlar::Model> make_model(const std::string& name, int64_t max_pos) {
  if (name == "gqa") return std::make_unique<mlar::Model>(mlar::random_model(gqa_config(max_pos), 1));
  if (name == "repeat" || name == "repeat-absorbed") {
    auto m = std::make_unique<mlar::Model>(mlar::convert_repeat(mlar::random_model(gqa_config(max_pos), 1)));
    if (name == "repeat-absorbed") mlar::absorb(*m);
    return m;
  }
  if (name == "deepseek")
    return std::make_unique<mlar::Model>(mlar::random_mla_model(deepseek_config(gqa_config(max_pos)), 1));
  mlar::fail("bench_mla: unknown model {}", name);
}

struct Row {
  std::string model, eval;
  int64_t context = 0, tokens = 0, cache_bytes_per_token = 0;
  double seconds = 0, tok_s = 0;
};

// Best time of `reps` runs of n tokens at positions cached .. cached+n-1 through `d`.
// The cache was filled once up to the longest context; its rows stay valid, so
// cutting it to `cached` tokens (longer or shorter than what the last run left) is
// clear() + advance().
double time_forward(const mlar::Decoder& d, mlar::KvCache& cache, mlar::ForwardScratch& scratch,
                    const std::vector<int32_t>& ids, int64_t cached, int64_t n, int64_t steps, int reps) {
  mlar::Tensor logits;
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    cache.clear();
    cache.advance(cached);
    const auto t0 = clock_type::now();
    for (int64_t s = 0; s < steps; ++s)
      d.forward(std::span<const int32_t>(ids.data() + cached + s * n, static_cast<size_t>(n)), cache, scratch, false,
                logits);
    best = std::min(best, mlar::bench::seconds_since(t0));
  }
  return best;
}

void bench_decode(const Args& a, std::vector<Row>& rows) {
  const int64_t max_ctx = *std::max_element(a.contexts.begin(), a.contexts.end());
  const int64_t max_pos = max_ctx + a.decode + 8;
  for (const auto& name : a.models) {
    const auto t0 = clock_type::now();
    const auto model = make_model(name, max_pos);
    const bool mla = model->config.mla.has_value();
    std::vector<mlar::MlaEval> evals{mlar::MlaEval::Auto};
    if (mla) evals = {mlar::MlaEval::Naive, mlar::MlaEval::Absorbed};
    if (mla && model->config.mla->absorbed) evals = {mlar::MlaEval::Absorbed};  // naive = absorbed there
    const mlar::Decoder prefill_decoder(*model);
    mlar::KvCache cache = prefill_decoder.make_cache(max_pos);
    mlar::ForwardScratch scratch;
    const auto ids = token_stream(max_pos, model->config.vocab_size);
    mlar::Tensor logits;
    prefill_decoder.forward(std::span<const int32_t>(ids.data(), static_cast<size_t>(max_ctx)), cache, scratch, false,
                            logits);
    if (!a.json)
      fmt::print(stderr, "{}: built and prefilled {} tokens in {:.1f} s; KV cache {} bytes per token\n", name, max_ctx,
                 mlar::bench::seconds_since(t0), cache.bytes_per_token());
    for (mlar::MlaEval e : evals) {
      const mlar::Decoder d(*model, e);
      for (int64_t ctx : a.contexts) {
        const double s = time_forward(d, cache, scratch, ids, ctx, 1, a.decode, a.reps);
        rows.push_back({name, mla ? mlar::mla_eval_name(e) : "gqa", ctx, a.decode, cache.bytes_per_token(), s,
                        static_cast<double>(a.decode) / s});
        if (!a.json)
          fmt::print(stderr, "  {:<16} {:<9} context {:>5}: {:8.2f} tok/s\n", name, rows.back().eval, ctx,
                     rows.back().tok_s);
      }
    }
  }
}

// Naive against absorbed for n tokens after `cached` ones.
void sweep(const Args& a) {
  struct Case {
    std::string name;
    mlar::Model model;
  };
  const int64_t max_pos = 4096 + 64;
  std::vector<Case> cases;
  cases.push_back({"stories-sized repeat", mlar::convert_repeat(mlar::random_model(stories_config(max_pos), 2))});
  cases.push_back({"1024 repeat", mlar::convert_repeat(mlar::random_model(gqa_config(max_pos), 1))});
  cases.push_back({"1024 deepseek", mlar::random_mla_model(deepseek_config(gqa_config(max_pos)), 1)});
  const std::vector<int64_t> cached_list{0, 512, 2048};
  const std::vector<int64_t> n_list{1, 2, 4, 16, 64, 256, 1024};
  fmt::print("{:<22} {:>6} {:>6} {:>12} {:>12} {:>7}  {}\n", "model", "cached", "n", "naive ms", "absorbed ms", "ratio",
             "faster");
  for (auto& c : cases) {
    const mlar::Decoder naive(c.model, mlar::MlaEval::Naive), absorbed(c.model, mlar::MlaEval::Absorbed);
    mlar::KvCache cache = naive.make_cache(max_pos);
    mlar::ForwardScratch scratch;
    const auto ids = token_stream(max_pos, c.model.config.vocab_size);
    mlar::Tensor logits;
    naive.forward(std::span<const int32_t>(ids.data(), 2048), cache, scratch, false, logits);
    for (int64_t cached : cached_list)
      for (int64_t n : n_list) {
        if (cached + n > max_pos) continue;
        const int64_t steps = n == 1 ? 4 : 1;
        const double tn = time_forward(naive, cache, scratch, ids, cached, n, steps, a.reps) / double(steps);
        const double ta = time_forward(absorbed, cache, scratch, ids, cached, n, steps, a.reps) / double(steps);
        fmt::print("{:<22} {:>6} {:>6} {:>12.3f} {:>12.3f} {:>7.2f}  {}\n", c.name, cached, n, tn * 1e3, ta * 1e3,
                   tn / ta, tn < ta ? "naive" : "absorbed");
        std::fflush(stdout);
      }
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    mlar::ops::set_cpu_threads(a.threads);
    if (a.sweep) {
      sweep(a);
      return 0;
    }
    std::vector<Row> rows;
    bench_decode(a, rows);
    if (a.json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& r : rows)
        j.push_back({{"model", r.model}, {"eval", r.eval}, {"context", r.context}, {"tokens", r.tokens},
                     {"seconds", r.seconds}, {"tokens_per_s", r.tok_s},
                     {"kv_cache_bytes_per_token", r.cache_bytes_per_token}, {"threads", mlar::ops::cpu_threads()}});
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("decode tokens/s ({} threads)\n{:<16} {:<9} {:>14}", mlar::ops::cpu_threads(), "model", "eval",
                 "KV B/token");
      for (int64_t c : a.contexts) fmt::print(" {:>9}", fmt::format("ctx {}", c));
      fmt::print("\n");
      for (size_t i = 0; i < rows.size(); i += a.contexts.size()) {
        fmt::print("{:<16} {:<9} {:>14}", rows[i].model, rows[i].eval, rows[i].cache_bytes_per_token);
        for (size_t k = 0; k < a.contexts.size(); ++k) fmt::print(" {:>9.2f}", rows[i + k].tok_s);
        fmt::print("\n");
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
  return 0;
}
