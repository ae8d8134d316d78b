#include "runtime/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace mlar {

PerplexityResult perplexity(Sequence& session, std::span<const int32_t> ids, const PerplexityOptions& opts) {
  if (opts.ctx < 2) fail("perplexity: ctx must be at least 2, got {}", opts.ctx);
  if (opts.ctx > session.max_tokens())
    fail("perplexity: ctx {} exceeds the context limit {}", opts.ctx, session.max_tokens());
  const int64_t total =
      opts.max_tokens > 0 ? std::min<int64_t>(opts.max_tokens, static_cast<int64_t>(ids.size())) : ids.size();
  if (total == 0) fail("perplexity: no tokens to score");
  const int64_t window = opts.ctx - 1, batch = std::max<int64_t>(1, opts.batch);
  const auto t0 = std::chrono::steady_clock::now();

  PerplexityResult r;
  double nll_sum = 0.0;
  std::vector<int32_t> input;    // [k] = BOS, t_1 .. t_{k-1}
  std::vector<double> row_nll;   // [batch] NLL per scored token
  for (int64_t start = 0; start < total; start += window) {
    const int64_t k = std::min(window, total - start);
    const int32_t* tgt = ids.data() + start;  // [k] targets t_1 .. t_k
    input.assign(1, session.config().bos_token_id);
    input.insert(input.end(), tgt, tgt + k - 1);
    session.reset();
    for (int64_t b0 = 0; b0 < k; b0 += batch) {
      const int64_t nb = std::min(batch, k - b0);
      // NLL of each row (on the session's device, which refuses ids outside the vocabulary), then summed
      // in order (the same for any thread count).
      row_nll.resize(static_cast<size_t>(nb));
      session.forward_nll(std::span<const int32_t>(input.data() + b0, static_cast<size_t>(nb)),
                          std::span<const int32_t>(tgt + b0, static_cast<size_t>(nb)), row_nll);
      double part = 0.0;
      for (double v : row_nll) part += v;
      nll_sum += part;
    }
    r.tokens += k;
    ++r.windows;
    if (opts.progress) opts.progress(r.tokens, total);
  }
  session.reset();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.mean_nll = nll_sum / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.mean_nll);
  r.tokens_per_s = r.seconds > 0 ? static_cast<double>(r.tokens) / r.seconds : 0;
  return r;
}

PerplexityResult perplexity(const Model& model, std::span<const int32_t> ids, const PerplexityOptions& opts) {
  SessionOptions so;
  so.max_tokens = std::max<int64_t>(opts.ctx, 2);
  Session session(model, so);
  return perplexity(session, ids, opts);
}

}  // namespace mlar
