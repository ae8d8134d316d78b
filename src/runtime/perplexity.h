// Perplexity of a token stream, in windows:
//   the ids (no BOS) are cut into windows of ctx-1 tokens (the last may be shorter);
//   each window runs as [BOS, t_1, .., t_{k-1}] in a fresh sequence and every token
//   after BOS is scored: NLL(t_i) = -log p(t_i | BOS, t_1 .. t_{i-1});
//   ppl = exp(mean NLL over all scored tokens), accumulated in double.
#pragma once
#include <cstdint>
#include <functional>
#include <span>

#include "model/model.h"
#include "runtime/session.h"

namespace mlar {

struct PerplexityOptions {
  int64_t ctx = 512;         // window length including BOS (>= 2)
  int64_t max_tokens = 0;    // score only the first max_tokens ids; 0 = all
  int64_t batch = 512;       // tokens per forward call (bounds the [batch, V] logits)
  // Called after each window with (tokens scored so far, tokens to score).
  std::function<void(int64_t done, int64_t total)> progress;
};

struct PerplexityResult {
  double ppl = 0;
  double mean_nll = 0;  // nats per token
  int64_t tokens = 0;   // tokens scored
  int64_t windows = 0;
  double seconds = 0;
  double tokens_per_s = 0;
};

// Uses (and resets) `session`; its context limit must be >= ctx.
PerplexityResult perplexity(Sequence& session, std::span<const int32_t> ids, const PerplexityOptions& opts);

// A fresh session over `model` (GQA or MLA, default options) with a context of ctx.
PerplexityResult perplexity(const Model& model, std::span<const int32_t> ids, const PerplexityOptions& opts);

}  // namespace mlar
