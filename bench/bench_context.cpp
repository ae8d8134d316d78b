// bench_context: decode tokens/s and KV-cache bytes against context length, for a
// GQA model and its MLA forms, each MLA form evaluated naively and absorbed:
//   gqa         the source
//   exact       the repeat retrofit (convert_repeat, MLA.md §3): same logits, same cache
//   compressed  the DeepSeek layout (n_r = 1) at --budget of the GQA cache: the model
//               given by --compressed (a real `convert --rope-mode extend` output), or
//               random weights of the shapes extend gives (d_r = d/2, r = budget *
//               2 n_kv d - d_r, d_n = d_v = d, latent norm): speed depends on shapes only.
//
//   bench_context [--model PATH [--tokenizer TOK] [--compressed PATH] | --shape H,L,NH,NKV,D,F,V]
//                 [--budget 0.25] [--contexts 512,1024,2048,4096,8192,16384] [--decode 4]
//                 [--reps 2] [--naive-max-context 16384] [--threads N] [--label NAME] [--json FILE]
//                 [--kv-dtypes f32] [--forms exact,compressed,gqa]
//
// Every form runs once per cache dtype of --kv-dtypes (f32, bf16, f16; default f32).
// Decode at context C: the cache holds C tokens of random values (no prefill: a 16K
// prefill would cost far more than the measurement, and the values do not change the
// work), then --decode tokens are timed one forward call each, best of --reps. Every
// form, evaluation and dtype runs in turn within each rep (interleaved, as their bounds
// are), so that their ratios compare the same phases of a shared host.
// Naive evaluation re-expands every cached latent at every step (cost grows with
// C * r * n_h * (d_n + d_v)); it is measured up to --naive-max-context.
// Roofline (GQA and absorbed rows): the weights' share of that read, plus the longer
// of the cache's share and the attention's multiply-adds at the FMA peak measured in
// the run (bench/fma_peak.h): absorbed MLA on a CPU is bound by arithmetic. At the
// avx512bf16 level, absorbed rows over a BF16 cache use the vdpbf16ps peak instead
// (the kernel's BF16 dot products, ops/kv_attention.h).
// Each row also gives the bytes a decode step must read: weights (all but the
// embedding table, of which one row is read) plus the cache in its dtype, the
// tokens/s that many bytes allow at the read bandwidth measured in the same run
// (before and after the runs; the larger of the two)
// (bound_tokens_per_s), and the fraction of that bound reached.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "fma_peak.h"
#include "read_spans.h"
#include "convert/extend_layer.h"
#include "convert/repeat.h"
#include "io/load_model.h"
#include "ops/cpu_features.h"
#include "ops/threads.h"
#include "runtime/decoder.h"
#include "runtime/mla_cache.h"
#include "runtime/random_mla_model.h"
#include "runtime/random_model.h"
#include "io/json_file.h"

namespace {

using namespace mlar;
using bench::clock_type;
using json = nlohmann::json;

struct Args {
  std::string model, tokenizer, compressed, label, json_out;
  std::string shape = "1024,16,16,4,64,2816,32000";
  double budget = 0.25;
  std::vector<int64_t> contexts{512, 1024, 2048, 4096, 8192, 16384};
  std::vector<DType> kv_dtypes{DType::F32};  // bench_report reads one row per form, eval, context
  DType weight_dtype = DType::F32;           // the random models' matrices (a --model keeps its own)
  std::vector<std::string> forms{"exact", "compressed", "gqa"};
  int64_t decode = 4, naive_max = 16384;
  int reps = 2, threads = 0;
};

const char* kUsage =
    "bench_context [--model PATH [--tokenizer TOK] [--compressed PATH] | --shape H,L,NH,NKV,D,F,V]\n"
    "              [--budget 0.25] [--contexts 512,1024,2048,4096,8192,16384] [--decode 4] [--reps 2]\n"
    "              [--naive-max-context 16384] [--threads N] [--label NAME] [--json FILE]\n"
    "              [--kv-dtypes f32] [--weight-dtype f32|bf16|f16] [--forms exact,compressed,gqa]\n"
    "Decode tokens/s and KV bytes against context for a GQA model (a file, or random weights of\n"
    "--shape, default 1024,16,16,4,64,2816,32000) and its exact and compressed MLA forms.\n";

Args parse(int argc, char** argv) {
  Args a;
  bench::parse_args(argc, argv, "bench_context", kUsage, [&](const std::string& k, auto& val) {
    if (k == "--model") a.model = val();
    else if (k == "--tokenizer") a.tokenizer = val();
    else if (k == "--compressed") a.compressed = val();
    else if (k == "--shape") a.shape = val();
    else if (k == "--budget") a.budget = std::stod(val());
    else if (k == "--contexts") a.contexts = bench::int_list(val(), k);
    else if (k == "--decode") a.decode = bench::int_list(val(), k).front();
    else if (k == "--reps") a.reps = static_cast<int>(bench::int_list(val(), k).front());
    else if (k == "--naive-max-context") a.naive_max = bench::int_list(val(), k).front();
    else if (k == "--threads") a.threads = std::stoi(val());
    else if (k == "--label") a.label = val();
    else if (k == "--json") a.json_out = val();
    else if (k == "--weight-dtype") a.weight_dtype = parse_write_dtype(val(), k);
    else if (k == "--kv-dtypes") {
      a.kv_dtypes.clear();
      for (const auto& s : bench::split_list(val())) a.kv_dtypes.push_back(parse_write_dtype(s, k));
    } else if (k == "--forms") {
      a.forms = bench::split_list(val());
      for (const auto& f : a.forms)
        if (f != "exact" && f != "compressed" && f != "gqa") fail("--forms: unknown form '{}'", f);
    }
    else return false;
    return true;
  });
  if (!(a.budget > 0 && a.budget < 1)) fail("--budget must lie in (0, 1), got {}", a.budget);
  return a;
}

// The compressed form's MLA config: extend's layout with r + d_r = budget of the GQA cache.
ModelConfig compressed_config(ModelConfig c, double budget) {
  const int64_t d_r = std::max<int64_t>(2, c.head_dim / 2 / 2 * 2);
  const auto total = static_cast<int64_t>(std::llround(budget * 2.0 * static_cast<double>(c.kv_dim())));
  if (total - d_r < 1) fail("--budget {}: {} cached values per layer leave no latent beside d_r = {}", budget, total, d_r);
  MlaConfig m = extend_mla_config(c, d_r);
  m.kv_lora_rank = total - d_r;
  m.latent_norm = true;
  c.mla = m;
  return c;
}

// fn(rows) for every CacheRows of every layer (GQA: K then V; MLA: the latent + rope rows).
template <typename Fn>
void for_each_cache_rows(KvCache& cache, Fn fn) {
  for (int64_t l = 0; l < cache.n_layers(); ++l) {
    LayerCache& lc = cache.layer(l);
    if (auto* g = dynamic_cast<GqaLayerCache*>(&lc)) {
      fn(g->k());
      fn(g->v());
    } else if (auto* m = dynamic_cast<MlaLayerCache*>(&lc)) {
      fn(m->rows());
    } else {
      fail("bench_context: unknown layer cache");
    }
  }
}

// Random values in every cached row (pages written, as a prefill would leave them).
void fill_cache(KvCache& cache, int64_t tokens) {
  cache.clear();
  cache.reserve_more(tokens);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> row;
  for_each_cache_rows(cache, [&](CacheRows& rows) {
    row.resize(static_cast<size_t>(rows.cols()));
    for (int64_t t = 0; t < tokens; ++t) {
      std::generate(row.begin(), row.end(), [&] { return u(rng); });
      rows.write(t, row.data(), rows.cols(), 1);
    }
  });
}

// The weight memory a decode step reads: every tensor once, but of an embedding table that is not also
// the head one row.
std::vector<bench::Span> weight_spans(const Model& m) {
  std::vector<bench::Span> spans;
  auto add = [&](const TypedTensor& t) {
    if (!t.empty()) spans.push_back({t.data(), t.nbytes()});
  };
  const ModelWeights& w = m.weights;
  if (m.config.tie_word_embeddings) add(w.embed);
  else if (!w.embed.empty()) spans.push_back({w.embed.row_bytes(0), static_cast<size_t>(w.embed.dim(1)) * dtype_size(w.embed.dtype)});
  add(w.final_norm);
  add(w.lm_head);
  for (const LayerWeights& L : w.layers)
    for (const TypedTensor* t : layer_tensors(const_cast<LayerWeights&>(L))) add(*t);
  return spans;
}

int64_t span_bytes(const std::vector<bench::Span>& spans) {
  int64_t n = 0;
  for (const auto& s : spans) n += static_cast<int64_t>(s.bytes);
  return n;
}

// ... and at context ctx, with rows 0 .. ctx-1 of every layer's cache.
std::vector<bench::Span> step_spans(const Model& m, KvCache& cache, int64_t ctx) {
  std::vector<bench::Span> spans = weight_spans(m);
  for_each_cache_rows(cache, [&](const CacheRows& r) {
    const size_t es = dtype_size(r.dtype());
    for (int64_t h = 0; h < r.heads(); ++h)  // head h's pieces of rows 0 .. ctx-1 (one span when heads == 1)
      spans.push_back({static_cast<const unsigned char*>(r.view().data) + static_cast<size_t>(h * r.head_stride()) * es,
                       static_cast<size_t>(ctx * r.head_cols()) * es});
  });
  return spans;
}

struct Form {
  std::string name;  // gqa | exact | compressed
  std::unique_ptr<Model> model;
};

uint64_t checksum = 0;  // of the bound's reads (kept, so they cannot be dropped)

// One measured configuration: a form, its evaluation and a cache dtype, with its own
// cache (filled once) and scratch.
struct Case {
  const Form* form;
  std::string eval;  // gqa | naive | absorbed
  DType kv_dtype;
  int64_t weight_bytes;
  int64_t attention_macs_per_token;  // multiply-adds of attention per cached token, all layers (0: naive, not counted)
  std::unique_ptr<Decoder> decoder;
  KvCache cache;
  ForwardScratch scratch;
  Tensor logits;
};

// Every case at every context. Per context, each rep times every case in turn (its decode steps, then a
// read of the bytes one of its steps reads), so that all cases and their bounds see the same phases of
// a shared host's memory bandwidth: their ratios are measured side by side, not minutes apart.
// Multiply-adds per cached token of one decode step's attention, over all layers: GQA scores and sums
// head_dim values per query head; absorbed MLA scores (d_n > 0 ? r : 0) + d_r values and sums r per head
// (MLA.md §2). 0 for the naive evaluation (not counted).
int64_t attention_macs_per_token(const ModelConfig& c, const std::string& eval) {
  if (eval == "gqa") return c.num_layers * c.num_heads * 2 * c.head_dim;
  if (eval != "absorbed") return 0;
  int64_t n = 0;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const int64_t r = c.mla->rank(l);
    n += c.num_heads * ((c.mla->qk_nope_head_dim > 0 ? r : 0) + c.mla->qk_rope_head_dim + r);
  }
  return n;
}

// Multiply-adds per second of a case's attention: the BF16 dot-product peak where the kernel uses it
// (absorbed MLA over a BF16 cache at the avx512bf16 level), else the FMA peak.
double attention_peak(const Case& c, double fma_peak, double dot_peak) {
  return dot_peak > 0 && c.eval == "absorbed" && c.kv_dtype == DType::BF16 ? dot_peak : fma_peak;
}

json run_cases(const Args& a, const std::vector<Form>& forms, const std::vector<int32_t>& ids, double fma_peak,
               double dot_peak) {
  const int64_t max_ctx = *std::max_element(a.contexts.begin(), a.contexts.end());
  const int64_t min_ctx = *std::min_element(a.contexts.begin(), a.contexts.end());
  std::vector<std::unique_ptr<Case>> cases;
  for (const Form& f : forms) {
    const bool mla = f.model->config.mla.has_value();
    for (DType t : a.kv_dtypes)
      for (MlaEval e : mla ? std::vector<MlaEval>{MlaEval::Naive, MlaEval::Absorbed} : std::vector<MlaEval>{MlaEval::Auto}) {
        if (e == MlaEval::Naive && min_ctx > a.naive_max) continue;  // never timed
        auto c = std::make_unique<Case>();
        c->form = &f;
        c->eval = mla ? mla_eval_name(e) : "gqa";
        c->kv_dtype = t;
        c->weight_bytes = span_bytes(weight_spans(*f.model));
        c->attention_macs_per_token = attention_macs_per_token(f.model->config, c->eval);
        c->decoder = std::make_unique<Decoder>(*f.model, e);
        c->cache = c->decoder->make_cache(max_ctx + a.decode, t);
        fill_cache(c->cache, max_ctx + a.decode);
        cases.push_back(std::move(c));
      }
  }
  json rows = json::array();
  for (int64_t ctx : a.contexts) {
    std::vector<Case*> now;
    for (auto& c : cases)
      if (c->eval != "naive" || ctx <= a.naive_max) now.push_back(c.get());
    std::vector<std::vector<bench::Span>> spans;
    for (Case* c : now) spans.push_back(step_spans(*c->form->model, c->cache, ctx));
    std::vector<double> best(now.size(), 1e30), read_best(now.size(), 1e30);
    for (int r = 0; r < a.reps; ++r)
      for (size_t i = 0; i < now.size(); ++i) {
        Case& c = *now[i];
        c.cache.clear();
        c.cache.advance(ctx);
        const auto t0 = clock_type::now();
        for (int64_t s = 0; s < a.decode; ++s)
          c.decoder->forward(std::span<const int32_t>(ids.data() + ctx + s, 1), c.cache, c.scratch, false, c.logits);
        best[i] = std::min(best[i], bench::seconds_since(t0));
        read_best[i] = std::min(read_best[i], bench::read_spans_seconds(spans[i], 2, &checksum));
      }
    for (size_t i = 0; i < now.size(); ++i) {
      const Case& c = *now[i];
      const int64_t kv_bpt = c.cache.bytes_per_token();
      const double tok_s = static_cast<double>(a.decode) / best[i];
      const int64_t step_bytes = c.weight_bytes + kv_bpt * ctx;
      // Roofline: the weights' share of the same-bytes read, plus the longer of the cache's share and the
      // attention's multiply-adds at the measured peak.
      const double cache_share = static_cast<double>(kv_bpt * ctx) / static_cast<double>(step_bytes);
      const double peak = attention_peak(c, fma_peak, dot_peak);
      const double attn_s = static_cast<double>(c.attention_macs_per_token * ctx) / peak;
      const double roof_s = read_best[i] * (1 - cache_share) + std::max(read_best[i] * cache_share, attn_s);
      rows.push_back({{"form", c.form->name},
                      {"eval", c.eval},
                      {"kv_dtype", dtype_flag_name(c.kv_dtype)},
                      {"context", ctx},
                      {"tokens_per_s", tok_s},
                      {"ms_per_token", 1e3 / tok_s},
                      {"kv_bytes_per_token", kv_bpt},
                      {"kv_bytes", kv_bpt * ctx},
                      {"weight_bytes_per_step", c.weight_bytes},
                      {"bytes_read_per_step", step_bytes},
                      {"same_bytes_read_bytes", span_bytes(spans[i])},
                      {"same_bytes_read_seconds", read_best[i]},
                      {"same_bytes_bound_tokens_per_s", 1.0 / read_best[i]},
                      {"fraction_of_same_bytes_bound", tok_s * read_best[i]}});
      if (c.attention_macs_per_token > 0)
        rows.back().update({{"attention_macs_per_step", c.attention_macs_per_token * ctx},
                            {"attention_seconds_at_fma_peak", attn_s},
                            {"attention_peak_macs_per_s", peak},
                            {"roofline_seconds", roof_s},
                            {"fraction_of_roofline", tok_s * roof_s}});
      fmt::print(stderr,
                 "  {:<10} {:<8} {:<4} ctx {:>6}: {:9.2f} tok/s  KV {:>8.1f} MiB  same bytes read {:.2f} ms ({:.0f}%)  "
                 "roofline {:.2f} ms ({:.0f}%)\n",
                 c.form->name, c.eval, dtype_flag_name(c.kv_dtype), ctx, tok_s,
                 static_cast<double>(kv_bpt * ctx) / (1 << 20), 1e3 * read_best[i], 100.0 * tok_s * read_best[i],
                 1e3 * roof_s, 100.0 * tok_s * roof_s);
    }
  }
  return rows;
}

json config_json(const ModelConfig& c) {
  json j = {{"hidden_size", c.hidden_size}, {"num_layers", c.num_layers},     {"num_heads", c.num_heads},
            {"num_kv_heads", c.num_kv_heads}, {"head_dim", c.head_dim}, {"intermediate_size", c.intermediate_size},
            {"vocab_size", c.vocab_size}};
  if (c.mla)
    j.update({{"kv_lora_rank", c.mla->kv_lora_rank},
              {"qk_rope_head_dim", c.mla->qk_rope_head_dim},
              {"num_rope_heads", c.mla->num_rope_heads}});
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    ops::set_cpu_threads(a.threads);
    const int64_t max_ctx = *std::max_element(a.contexts.begin(), a.contexts.end());
    const int64_t max_pos = max_ctx + a.decode;
    const auto t0 = clock_type::now();
    auto src = std::make_unique<Model>(
        a.model.empty() ? random_model(bench::parse_shape(a.shape, max_pos), 1)
                        : load_model(a.model, LoadOptions{a.tokenizer}));
    src->config.max_position_embeddings = std::max(src->config.max_position_embeddings, max_pos);
    if (a.model.empty()) cast_matrices(src->weights, a.weight_dtype);
    if (src->config.mla) fail("{}: bench_context takes a GQA model", a.model);
    const std::string label = !a.label.empty() ? a.label : a.model.empty() ? "random " + a.shape : a.model;
    fmt::print(stderr, "{}: loaded in {:.1f} s, {} threads\n", label, bench::seconds_since(t0), ops::cpu_threads());

    const auto ids = bench::token_stream(max_pos, src->config.vocab_size);
    json out = {{"benchmark", "context"},
                {"label", label},
                {"threads", ops::cpu_threads()},
                {"decode_tokens", a.decode},
                {"reps", a.reps},
                {"budget", a.budget},
                {"compressed_source", a.compressed.empty() ? "random weights of extend's shapes" : a.compressed},
                {"machine", bench::machine_json()},
                {"read_bandwidth_bytes_per_s", bench::read_bandwidth(ops::cpu_threads())},
                {"kv_kernel_level", ops::cpu_level_name(ops::cpu_active_level())},
                {"weight_dtype", dtype_name(a.weight_dtype)},
                {"source", config_json(src->config)}};
    fmt::print(stderr, "read bandwidth: {:.1f} GB/s\n", out["read_bandwidth_bytes_per_s"].get<double>() / 1e9);
    const double bandwidth = out["read_bandwidth_bytes_per_s"].get<double>();
    const auto wanted = [&](const char* form) { return std::count(a.forms.begin(), a.forms.end(), form) > 0; };
    std::vector<Form> forms;
    if (wanted("exact")) forms.push_back(Form{"exact", std::make_unique<Model>(convert_repeat(*src))});
    if (wanted("compressed")) {
      Form compressed{"compressed", nullptr};
      if (!a.compressed.empty()) {
        compressed.model = std::make_unique<Model>(load_model(a.compressed, LoadOptions{a.tokenizer}));
        compressed.model->config.max_position_embeddings = max_pos;
      } else {
        compressed.model = std::make_unique<Model>(random_mla_model(compressed_config(src->config, a.budget), 2));
        cast_matrices(compressed.model->weights, a.weight_dtype);
      }
      forms.push_back(std::move(compressed));
    }
    if (wanted("gqa")) forms.push_back(Form{"gqa", std::move(src)});
    for (const Form& f : forms) out["configs"][f.name] = config_json(f.model->config);
    float keep = 0;
    const double fma_peak = bench::fma_peak_macs_per_s(3, &keep);
    out["fma_peak_macs_per_s"] = fma_peak;
    const double dot_peak = bench::fma_peak_macs_per_s(3, &keep, true);
    if (dot_peak > 0) out["bf16_dot_peak_macs_per_s"] = dot_peak;
    fmt::print(stderr, "multiply-add peak: {:.1f} G/s ({} threads){}\n", fma_peak / 1e9, ops::cpu_threads(),
               dot_peak > 0 ? fmt::format("; BF16 dot products {:.1f} G/s", dot_peak / 1e9) : "");
    json rows = run_cases(a, forms, ids, fma_peak, dot_peak);
    checksum += static_cast<uint64_t>(keep != 0.0f);
    // The read bandwidth again after the runs (it moves with the neighbours' load on a
    // shared host): the bound uses the larger of the two, so a fraction of it is a
    // lower estimate.
    const double before = bandwidth, after = bench::read_bandwidth(ops::cpu_threads());
    const double bw = std::max(before, after);
    fmt::print(stderr, "read bandwidth after the runs: {:.1f} GB/s; bounds use {:.1f} GB/s\n", after / 1e9, bw / 1e9);
    out["read_bandwidth_before_bytes_per_s"] = before;
    out["read_bandwidth_after_bytes_per_s"] = after;
    out["read_bandwidth_bytes_per_s"] = bw;
    for (auto& r : rows) {
      const double bound = bw / r.at("bytes_read_per_step").get<double>();
      r["bound_tokens_per_s"] = bound;
      r["fraction_of_bound"] = r.at("tokens_per_s").get<double>() / bound;
    }
    out["rows"] = std::move(rows);
    if (a.json_out.empty()) {
      fmt::print("{}\n", out.dump(2));
    } else {
      write_json_file(a.json_out, out, true);  // results are regenerated
      fmt::print(stderr, "wrote {}\n", a.json_out);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
