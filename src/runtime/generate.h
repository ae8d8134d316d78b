// Autoregressive generation: prefill the prompt, then sample and decode one token at
// a time until EOS, the token budget, the context limit, or the callback says stop.
#pragma once
#include <cstdint>
#include <functional>
#include <span>

#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace mlar {

struct GenerateOptions {
  int64_t max_new_tokens = 256;  // generated tokens at most
  SamplerOptions sampling;       // temperature 0 = greedy
  bool stop_at_eos = true;       // config.eos_token_id ends generation (and is not emitted)
  int64_t max_tokens = 0;        // context limit for a fresh session; 0 = the model's
  // Sample only ids below this (0 = every row of the output head): the tokenizer's size
  // when the embedding has rows no token maps to (padded vocabularies), which it
  // could not print.
  int64_t sample_vocab = 0;
};

enum class StopReason { Eos, MaxTokens, ContextFull, Callback };
const char* stop_reason_name(StopReason r);

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // tokens passed to on_token (EOS not counted)
  double prefill_seconds = 0;    // prompt forward + first sample
  double decode_seconds = 0;     // every later forward + sample (not the callback)
  double prefill_tok_s = 0;      // prompt_tokens / prefill_seconds
  double decode_tok_s = 0;       // decode forwards / decode_seconds
  StopReason stop = StopReason::MaxTokens;
};

// Called with each new token; return false to stop after it.
using OnToken = std::function<bool(int32_t token)>;

// prompt: the ids to condition on, BOS included by the caller (not empty). The
// sequence (prompt + generated) never exceeds the session's context limit.
// Continues from whatever `session` holds (reset() it for a fresh sequence).
GenerateStats generate(Sequence& session, std::span<const int32_t> prompt, const GenerateOptions& opts,
                       const OnToken& on_token = {});

// A fresh session over `model` (GQA or MLA, default options).
GenerateStats generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& opts,
                       const OnToken& on_token = {});

}  // namespace mlar
