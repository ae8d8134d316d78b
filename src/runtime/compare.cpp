#include "runtime/compare.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "ops/argmax.h"
#include "ops/parallel.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "util/error.h"

namespace mlar {
namespace {

// What one position contributes.
struct RowStats {
  double max_diff = 0, max_abs = 0, kl = 0, nll_a = 0, nll_b = 0;
  bool agree = false;
};

// log-softmax of a row in double: out[v] = x[v] - logsumexp(x).
void log_softmax(const float* x, int64_t V, std::vector<double>& out) {
  double mx = -INFINITY;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(x[v]));
  double z = 0;
  for (int64_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(x[v]) - mx);
  const double lse = mx + std::log(z);
  out.resize(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) out[static_cast<size_t>(v)] = static_cast<double>(x[v]) - lse;
}

RowStats compare_row(const float* a, const float* b, int64_t V, int32_t target, std::vector<double>& la,
                     std::vector<double>& lb) {
  RowStats s;
  for (int64_t v = 0; v < V; ++v) {
    s.max_diff = std::max(s.max_diff, std::abs(static_cast<double>(a[v]) - static_cast<double>(b[v])));
    s.max_abs = std::max(s.max_abs, std::abs(static_cast<double>(a[v])));
  }
  log_softmax(a, V, la);
  log_softmax(b, V, lb);
  for (size_t v = 0; v < la.size(); ++v) s.kl += std::exp(la[v]) * (la[v] - lb[v]);
  s.kl = std::max(s.kl, 0.0);  // rounding can leave a tiny negative
  s.nll_a = -la[static_cast<size_t>(target)];
  s.nll_b = -lb[static_cast<size_t>(target)];
  s.agree = ops::argmax(a, V) == ops::argmax(b, V);
  return s;
}

std::unique_ptr<Sequence> open(const CompareOptions::OpenSequence& f, const Model& m, const SessionOptions& so) {
  if (f) return f(m, so);
  return std::make_unique<Session>(m, so);
}

std::vector<int32_t> greedy(const Model& m, const CompareOptions::OpenSequence& f, const std::vector<int32_t>& prompt,
                            int64_t n, DType kv_dtype) {
  SessionOptions so;
  so.kv_dtype = kv_dtype;
  so.max_tokens = std::min<int64_t>(m.config.max_position_embeddings, static_cast<int64_t>(prompt.size()) + n);
  const auto seq = open(f, m, so);
  Sequence& s = *seq;
  GenerateOptions go;
  go.max_new_tokens = n;
  go.sampling.temperature = 0;
  std::vector<int32_t> out;
  generate(s, prompt, go, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  return out;
}

}  // namespace

CompareResult compare_models(const Model& a, const Model& b, std::span<const int32_t> ids, const CompareOptions& opts) {
  const int64_t V = a.config.vocab_size;
  if (b.config.vocab_size != V)
    fail("compare: {} has a vocabulary of {} tokens but {} has {}; the models must share one", b.source,
         b.config.vocab_size, a.source, V);
  if (opts.ctx < 2) fail("compare: ctx must be at least 2, got {}", opts.ctx);
  for (const Model* m : {&a, &b})
    if (opts.ctx > m->config.max_position_embeddings)
      fail("compare: ctx {} exceeds the maximum context of {} ({})", opts.ctx, m->config.max_position_embeddings,
           m->source);
  const int64_t total =
      opts.max_tokens > 0 ? std::min<int64_t>(opts.max_tokens, static_cast<int64_t>(ids.size())) : ids.size();
  if (total == 0) fail("compare: no tokens to compare");
  for (int64_t i = 0; i < total; ++i)
    if (ids[i] < 0 || ids[i] >= V) fail("compare: token id {} outside the vocabulary of {}", ids[i], V);
  const auto t0 = std::chrono::steady_clock::now();

  SessionOptions so;
  so.max_tokens = opts.ctx;
  so.kv_dtype = opts.kv_dtype;
  const auto seq_a = open(opts.open_a, a, so), seq_b = open(opts.open_b, b, so);
  Sequence &sa = *seq_a, &sb = *seq_b;
  const int64_t window = opts.ctx - 1, batch = std::max<int64_t>(1, opts.batch);
  CompareResult r;
  double kl_sum = 0, nll_a = 0, nll_b = 0;
  std::vector<int32_t> input;  // [k] = BOS, t_1 .. t_{k-1}
  std::vector<RowStats> rows;  // [batch]
  for (int64_t start = 0; start < total; start += window) {
    const int64_t k = std::min(window, total - start);
    const int32_t* tgt = ids.data() + start;  // [k] targets t_1 .. t_k
    input.assign(1, a.config.bos_token_id);
    input.insert(input.end(), tgt, tgt + k - 1);
    sa.reset();
    sb.reset();
    for (int64_t b0 = 0; b0 < k; b0 += batch) {
      const int64_t nb = std::min(batch, k - b0);
      const std::span<const int32_t> part(input.data() + b0, static_cast<size_t>(nb));
      const Tensor& la = sa.forward(part, Logits::All);  // [nb, V]
      const Tensor& lb = sb.forward(part, Logits::All);  // [nb, V]
      rows.assign(static_cast<size_t>(nb), RowStats{});
      ops::parallel_for(nb, ops::pick_grain(nb, 8 * V), [&](int64_t r0, int64_t r1) {
        std::vector<double> bufa, bufb;  // [V] log-probabilities
        for (int64_t i = r0; i < r1; ++i)
          rows[static_cast<size_t>(i)] = compare_row(la.row(i), lb.row(i), V, tgt[b0 + i], bufa, bufb);
      });
      for (const RowStats& s : rows) {  // summed in order: the same for any thread count
        r.max_abs_logit_diff = std::max(r.max_abs_logit_diff, s.max_diff);
        r.max_abs_logit = std::max(r.max_abs_logit, s.max_abs);
        r.max_kl = std::max(r.max_kl, s.kl);
        kl_sum += s.kl;
        nll_a += s.nll_a;
        nll_b += s.nll_b;
        r.greedy_agree += s.agree;
      }
    }
    r.tokens += k;
    ++r.windows;
    if (opts.progress) opts.progress(r.tokens, total);
  }
  const double n = static_cast<double>(r.tokens);
  r.mean_kl = kl_sum / n;
  r.ppl_a = std::exp(nll_a / n);
  r.ppl_b = std::exp(nll_b / n);
  r.greedy_agreement = static_cast<double>(r.greedy_agree) / n;

  if (!opts.prompt.empty() && opts.gen_tokens > 0) {
    r.gen_a = greedy(a, opts.open_a, opts.prompt, opts.gen_tokens, opts.kv_dtype);
    r.gen_b = greedy(b, opts.open_b, opts.prompt, opts.gen_tokens, opts.kv_dtype);
    r.gen_identical = r.gen_a == r.gen_b;
  }
  r.kv_a = kv_footprint(a.config, opts.kv_dtype);
  r.kv_b = kv_footprint(b.config, opts.kv_dtype);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace mlar
