// bench_report: turns the JSON of bench_context and bench_convert into the plot
// (SVG) and the markdown tables of docs/benchmarks.md.
//
//   bench_report --context FILE [--context FILE ...] --convert FILE --svg OUT.svg
//
// Markdown goes to stdout.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "svg_plot.h"
#include "util/error.h"

namespace {

using json = nlohmann::json;
using namespace mlar;
using bench::Panel;
using bench::Series;

const char* kUsage =
    "bench_report --context FILE [--context FILE ...] [--bound FILE ...] [--convert FILE] [--svg OUT.svg]\n"
    "--bound: a bench_context run over several --kv-dtypes, tabulated against the bytes-per-step bound.\n"
    "Markdown tables on stdout; the plot to --svg.\n";

json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("{}: cannot open", path);
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    fail("{}: malformed JSON: {}", path, e.what());
  }
}

double mib(double b) { return b / (1 << 20); }

// Rows of one (form, eval) in context order.
std::vector<const json*> line(const json& j, const std::string& form, const std::string& eval) {
  std::vector<const json*> out;
  for (const auto& r : j.at("rows"))
    if (r.at("form") == form && r.at("eval") == eval) out.push_back(&r);
  return out;
}

const json* at_context(const json& j, const std::string& form, const std::string& eval, int64_t ctx) {
  for (const auto* r : line(j, form, eval))
    if (r->at("context").get<int64_t>() == ctx) return r;
  return nullptr;
}

const std::vector<std::pair<std::string, std::string>> kLines{{"gqa", "gqa"},
                                                               {"exact", "naive"},
                                                               {"exact", "absorbed"},
                                                               {"compressed", "naive"},
                                                               {"compressed", "absorbed"}};

std::string shape_text(const json& c) {
  std::string s = fmt::format("hidden {}, {} layers, {} heads / {} kv heads of {}, FFN {}, vocab {}",
                              c.at("hidden_size").get<int64_t>(), c.at("num_layers").get<int64_t>(),
                              c.at("num_heads").get<int64_t>(), c.at("num_kv_heads").get<int64_t>(),
                              c.at("head_dim").get<int64_t>(), c.at("intermediate_size").get<int64_t>(),
                              c.at("vocab_size").get<int64_t>());
  return s;
}

// Least squares y = a + b x.
std::pair<double, double> fit(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i];
  const double den = n * sxx - sx * sx;
  if (x.size() < 2 || den == 0) return {0, 0};
  const double b = (n * sxy - sx * sy) / den;
  return {(sy - b * sx) / n, b};
}

void context_markdown(const json& j) {
  const json& cc = j.at("configs").at("compressed");
  fmt::print("#### {}\n\n", j.at("label").get<std::string>());
  fmt::print("Source: {}. Compressed: r = {}, d_r = {} ({}). {} threads; best of {} runs of {} decode steps.\n\n",
             shape_text(j.at("source")), cc.at("kv_lora_rank").get<int64_t>(), cc.at("qk_rope_head_dim").get<int64_t>(),
             j.at("compressed_source").get<std::string>(), j.at("threads").get<int>(), j.at("reps").get<int>(),
             j.at("decode_tokens").get<int64_t>());
  fmt::print("| context | KV GQA = exact | KV compressed | GQA tok/s | exact naive | exact absorbed | compressed naive "
             "| compressed absorbed | compressed absorbed / GQA | bytes read GQA / compressed |\n");
  fmt::print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto* g : line(j, "gqa", "gqa")) {
    const int64_t ctx = g->at("context").get<int64_t>();
    auto cell = [&](const std::string& form, const std::string& eval) {
      const json* r = at_context(j, form, eval, ctx);
      return r ? fmt::format("{:.1f}", r->at("tokens_per_s").get<double>()) : std::string("-");
    };
    const json* ca = at_context(j, "compressed", "absorbed", ctx);
    std::string ratio = "-", predicted = "-", kvc = "-";
    if (ca) {
      ratio = fmt::format("{:.2f}", ca->at("tokens_per_s").get<double>() / g->at("tokens_per_s").get<double>());
      predicted = fmt::format("{:.2f}", g->at("bytes_read_per_step").get<double>() /
                                            ca->at("bytes_read_per_step").get<double>());
      kvc = fmt::format("{:.1f} MiB", mib(ca->at("kv_bytes").get<double>()));
    }
    fmt::print("| {} | {:.1f} MiB | {} | {} | {} | {} | {} | {} | {} | {} |\n", ctx, mib(g->at("kv_bytes").get<double>()),
               kvc, cell("gqa", "gqa"), cell("exact", "naive"), cell("exact", "absorbed"), cell("compressed", "naive"),
               cell("compressed", "absorbed"), ratio, predicted);
  }
  const json& g0 = *line(j, "gqa", "gqa").front();
  const json* c0 = at_context(j, "compressed", "absorbed", g0.at("context").get<int64_t>());
  fmt::print("\nKV bytes per token: GQA and exact {}, compressed {}. Weights read per decode step: GQA {:.1f} MiB, "
             "compressed {:.1f} MiB.\n\n",
             g0.at("kv_bytes_per_token").get<int64_t>(), c0 ? c0->at("kv_bytes_per_token").get<int64_t>() : 0,
             mib(g0.at("weight_bytes_per_step").get<double>()),
             c0 ? mib(c0->at("weight_bytes_per_step").get<double>()) : 0.0);
  // Time per step against context: a + b * context, least squares over every context.
  if (j.contains("read_bandwidth_bytes_per_s"))
    fmt::print("Read bandwidth of the machine ({} threads summing a 1 GiB array): {:.1f} GB/s.\n\n",
               j.at("threads").get<int>(), j.at("read_bandwidth_bytes_per_s").get<double>() / 1e9);
  fmt::print("| form | step time at context 0 (fit) | added per 1K cached tokens | KV bytes per cached token | "
             "KV bytes / added time |\n| --- | ---: | ---: | ---: | ---: |\n");
  for (const auto& [form, eval] : kLines) {
    std::vector<double> x, y;
    int64_t kv = 0;
    for (const auto* r : line(j, form, eval)) {
      x.push_back(r->at("context").get<double>());
      y.push_back(r->at("ms_per_token").get<double>());
      kv = r->at("kv_bytes_per_token").get<int64_t>();
    }
    if (x.size() < 2) continue;
    const auto [a, b] = fit(x, y);
    fmt::print("| {} {} | {:.2f} ms | {:.3f} ms | {} | {:.1f} GB/s |\n", form, form == "gqa" ? "" : eval, a, b * 1024,
               kv, b > 0 ? static_cast<double>(kv) / (b * 1e-3) / 1e9 : 0.0);
  }
  fmt::print("\n");
}

void convert_markdown(const json& j) {
  fmt::print("Calibration: {} tokens; budget {} of the GQA cache; sources written as BF16 HF directories.\n\n",
             j.at("calib_tokens").get<int64_t>(), j.at("budget").get<double>());
  fmt::print("| size (hidden, layers, heads, kv heads, d, FFN) | parameters | source on disk | repeat: time | repeat: peak "
             "RSS | extend + calibration: time | extend + calibration: peak RSS |\n");
  fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  std::map<std::string, std::map<std::string, const json*>> by_size;
  std::vector<std::string> order;
  for (const auto& r : j.at("rows")) {
    const std::string size = r.at("size");
    if (!by_size.count(size)) order.push_back(size);
    by_size[size][r.at("mode")] = &r;
  }
  for (const auto& size : order) {
    const auto& m = by_size[size];
    const json& any = *m.begin()->second;
    auto cells = [&](const std::string& mode) {
      const auto it = m.find(mode);
      if (it == m.end()) return std::string("- | -");
      return fmt::format("{:.1f} s | {:.0f} MiB", it->second->at("seconds").get<double>(),
                         mib(it->second->at("peak_rss_bytes").get<double>()));
    };
    fmt::print("| {} | {:.1f} M | {:.0f} MiB | {} | {} |\n", size, any.at("parameters").get<double>() / 1e6,
               mib(any.at("source_bytes").get<double>()), cells("repeat"), cells("extend+calib"));
  }
  fmt::print("\n");
  for (const std::string mode : {"repeat", "extend+calib"}) {
    std::vector<double> p, rss, sec;
    for (const auto& r : j.at("rows"))
      if (r.at("mode") == mode) {
        p.push_back(r.at("parameters").get<double>());
        rss.push_back(r.at("peak_rss_bytes").get<double>());
        sec.push_back(r.at("seconds").get<double>());
      }
    if (p.size() < 2) continue;
    const auto [ra, rb] = fit(p, rss);
    const auto [ta, tb] = fit(p, sec);
    fmt::print("- `{}`: peak RSS ≈ {:.0f} MiB + {:.1f} bytes per parameter; time ≈ {:.1f} s + {:.2f} s per million "
               "parameters (least squares over {} sizes).\n",
               mode, mib(ra), rb, ta, tb * 1e6, p.size());
  }
  fmt::print("\n");
}

// Attention multiply-adds per cached token of a form's first row that has them (0: none).
int64_t macs_per_token(const json& j, const std::string& form) {
  for (const auto& r : j.at("rows"))
    if (r.at("form") == form && r.contains("attention_macs_per_step"))
      return r.at("attention_macs_per_step").get<int64_t>() / r.at("context").get<int64_t>();
  return 0;
}

// A bench_context run over several cache dtypes: every (form, cache dtype, context)
// against its bound, and the compressed/GQA speed ratio against the ratio of their bytes.
// The bound is the time to read the very bytes a step reads, measured right after each
// timed run (same_bytes_*; runs from before it have only the global read bandwidth,
// which is then the bound).
void bound_markdown(const json& j) {
  fmt::print("#### {}: decode against the bytes-per-step bound\n\n", j.at("label").get<std::string>());
  const bool same = !j.at("rows").empty() && j.at("rows")[0].contains("same_bytes_bound_tokens_per_s");
  const double b0 = j.value("read_bandwidth_before_bytes_per_s", 0.0), b1 = j.value("read_bandwidth_after_bytes_per_s", 0.0);
  const bool moved = b0 > 0 && b1 > 0 && std::max(b0, b1) > 1.1 * std::min(b0, b1);
  if (same) {
    fmt::print("Bound = the time to read the bytes one decode step reads (every weight once, the cache rows up to the "
               "context), timed on those very buffers with the same {} threads right after each timed run, best of "
               "the runs: it follows a shared host's bandwidth as it moves. For reference, the global read "
               "bandwidth (a 1 GiB array) was {:.1f} GB/s before and {:.1f} after the runs ('global' columns: the "
               "fraction of the bound it gives). Best of {} runs of {} decode steps.\n\n",
               j.at("threads").get<int>(), b0 / 1e9, b1 / 1e9, j.at("reps").get<int>(),
               j.at("decode_tokens").get<int64_t>());
  } else {
    fmt::print("Bound = read bandwidth ({:.1f} GB/s: the larger of {:.1f} before and {:.1f} after the runs, {} threads) "
               "/ (weight bytes + KV bytes x context) per step. Best of {} runs of {} decode steps.\n\n",
               j.at("read_bandwidth_bytes_per_s").get<double>() / 1e9, b0 / 1e9, b1 / 1e9, j.at("threads").get<int>(),
               j.at("reps").get<int>(), j.at("decode_tokens").get<int64_t>());
    if (moved)
      fmt::print("**The read bandwidth moved by more than 10% during this run (a shared host): its ratios are not "
                 "reliable; run it again.**\n\n");
  }
  const bool roof = std::any_of(j.at("rows").begin(), j.at("rows").end(),
                               [](const json& r) { return r.contains("fraction_of_roofline"); });
  if (roof) {
    fmt::print("Roofline = the weights' share of that read plus the longer of the cache's share and the attention's "
               "multiply-adds at the FMA peak measured in the run ({:.0f} G multiply-adds/s on {} threads): absorbed "
               "MLA does {} multiply-adds per cached token here, GQA {}, so on this CPU the compressed form's "
               "attention is bound by arithmetic ('roofline' columns).",
               j.at("fma_peak_macs_per_s").get<double>() / 1e9, j.at("threads").get<int>(), macs_per_token(j, "compressed"),
               macs_per_token(j, "gqa"));
    if (j.contains("bf16_dot_peak_macs_per_s"))
      fmt::print(" The kernel level was {}: absorbed MLA over a BF16 cache multiplies with BF16 dot products "
                 "(vdpbf16ps, queries and probabilities rounded to BF16), whose peak, {:.0f} G multiply-adds/s, is "
                 "its rows' roofline.",
                 j.value("kv_kernel_level", std::string("?")), j.at("bf16_dot_peak_macs_per_s").get<double>() / 1e9);
    fmt::print("\n\n");
  }
  const char* bound_key = same ? "same_bytes_bound_tokens_per_s" : "bound_tokens_per_s";
  fmt::print("| cache | context | GQA tok/s | GQA bound | GQA / bound | compressed absorbed tok/s | bound | / bound | "
             "speed ratio compressed / GQA | bound ratio compressed / GQA | speed / bound ratio |{}{}\n",
             roof ? " compressed / roofline |" : "", same ? " GQA / global | compressed / global |" : "");
  fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |{}{}\n", roof ? " ---: |" : "",
             same ? " ---: | ---: |" : "");
  std::map<std::pair<std::string, int64_t>, std::pair<const json*, const json*>> rows;  // (dtype, ctx) -> (gqa, mla)
  for (const auto& r : j.at("rows")) {
    const std::string form = r.at("form"), eval = r.at("eval");
    auto& slot = rows[{r.at("kv_dtype").get<std::string>(), r.at("context").get<int64_t>()}];
    if (form == "gqa") slot.first = &r;
    if (form == "compressed" && eval == "absorbed") slot.second = &r;
  }
  for (const auto& [key, gm] : rows) {
    const auto [g, c] = gm;
    if (!g || !c) continue;
    const double gt = g->at("tokens_per_s"), gb = g->at(bound_key), ct = c->at("tokens_per_s"), cb = c->at(bound_key);
    fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.0f}% | {:.1f} | {:.1f} | {:.0f}% | {:.2f} | {:.2f} | {:.2f} |", key.first,
               key.second, gt, gb, 100 * gt / gb, ct, cb, 100 * ct / cb, ct / gt, cb / gb, (ct / gt) / (cb / gb));
    if (roof) fmt::print(" {:.0f}% |", 100 * c->at("fraction_of_roofline").get<double>());
    if (same)
      fmt::print(" {:.0f}% | {:.0f}% |", 100 * g->at("fraction_of_bound").get<double>(),
                 100 * c->at("fraction_of_bound").get<double>());
    fmt::print("\n");
  }
  fmt::print("\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> contexts, bounds;
    std::string convert, svg;
    bench::parse_args(argc, argv, "bench_report", kUsage, [&](const std::string& k, auto& val) {
      if (k == "--context") contexts.push_back(val());
      else if (k == "--bound") bounds.push_back(val());
      else if (k == "--convert") convert = val();
      else if (k == "--svg") svg = val();
      else return false;
      return true;
    });
    std::vector<Panel> panels;
    Panel kv{"KV cache against context", "context (tokens)", "KV cache (MiB)", true, true, {}};
    for (const auto& path : contexts) {
      const json j = read_json(path);
      if (panels.empty()) {
        const json& m = j.at("machine");
        fmt::print("Machine: {}, {} cores, {} memory ({}).\n\n", m.at("cpu").get<std::string>(), m.at("cores").get<int>(),
                   m.at("memory").get<std::string>(), m.at("host").get<std::string>());
      }
      context_markdown(j);
      const std::string label = j.at("label");
      Panel p{label + ": decode", "context (tokens)", "decode tokens/s", true, true, {}};
      for (const auto& [form, eval] : kLines) {
        Series s{form == "gqa" ? "GQA" : form + " " + eval, {}, {}, eval == "naive"};
        for (const auto* r : line(j, form, eval)) {
          s.x.push_back(r->at("context").get<double>());
          s.y.push_back(r->at("tokens_per_s").get<double>());
        }
        if (!s.x.empty()) p.series.push_back(std::move(s));
      }
      panels.push_back(std::move(p));
      for (const std::string form : {"gqa", "compressed"}) {
        Series s{label + (form == "gqa" ? ": GQA, exact" : ": compressed"), {}, {}, form != "gqa"};
        for (const auto* r : line(j, form, form == "gqa" ? "gqa" : "absorbed")) {
          s.x.push_back(r->at("context").get<double>());
          s.y.push_back(mib(r->at("kv_bytes").get<double>()));
        }
        kv.series.push_back(std::move(s));
      }
    }
    if (!contexts.empty()) panels.push_back(std::move(kv));
    for (const auto& path : bounds) bound_markdown(read_json(path));
    if (!convert.empty()) {
      const json j = read_json(convert);
      convert_markdown(j);
      Panel rss{"convert: peak RSS", "parameters", "peak RSS (MiB)", true, true, {}};
      Panel time{"convert: wall time", "parameters", "seconds", true, true, {}};
      for (const std::string mode : {"repeat", "extend+calib"}) {
        Series a{mode, {}, {}, false}, b{mode, {}, {}, false};
        for (const auto& r : j.at("rows"))
          if (r.at("mode") == mode) {
            a.x.push_back(r.at("parameters").get<double>());
            a.y.push_back(mib(r.at("peak_rss_bytes").get<double>()));
            b.x.push_back(r.at("parameters").get<double>());
            b.y.push_back(r.at("seconds").get<double>());
          }
        rss.series.push_back(std::move(a));
        time.series.push_back(std::move(b));
      }
      rss.x_powers_of_two = time.x_powers_of_two = false;
      panels.push_back(std::move(rss));
      panels.push_back(std::move(time));
    }
    if (!svg.empty()) {
      std::ofstream f(svg + ".tmp");
      f << bench::svg_chart(panels, 3);
      f.close();
      if (!f) fail("{}: cannot write", svg);
      std::rename((svg + ".tmp").c_str(), svg.c_str());
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
