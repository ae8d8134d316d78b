// Two models on the same token windows: how far apart their logits, distributions,
// perplexities and greedy choices are (e.g. a GQA source and its MLA conversion).
//
// Windows follow the perplexity protocol (runtime/perplexity.h): the ids (no BOS) are
// cut into windows of ctx-1 tokens; each runs as [BOS, t_1, .., t_{k-1}] in a fresh
// sequence of each model, and every position is compared and scored against t_i.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "model/kv_footprint.h"
#include "model/model.h"
#include "runtime/sequence.h"
#include "runtime/session.h"
#include "tensor/dtype.h"

namespace mlar {

struct CompareOptions {
  int64_t ctx = 512;          // window length including BOS (>= 2)
  int64_t max_tokens = 4096;  // compare the first max_tokens ids; 0 = all
  int64_t batch = 512;        // tokens per forward call
  DType kv_dtype = DType::F32;  // how both models' KV caches store values
  // Greedy generation from `prompt` (BOS included; empty = no generation) for
  // gen_tokens tokens at most (stopping at EOS) with each model.
  std::vector<int32_t> prompt;
  int64_t gen_tokens = 0;
  // Called after each window with (tokens compared so far, tokens to compare).
  std::function<void(int64_t done, int64_t total)> progress;
  // Opens the sequence that runs model A (open_a) or B (open_b): a CPU Session when empty; the CLI passes
  // backend/open_sequence with the device each model runs on (e.g. A on the CPU, B on a GPU).
  using OpenSequence = std::function<std::unique_ptr<Sequence>(const Model&, const SessionOptions&)>;
  OpenSequence open_a, open_b;
};

struct CompareResult {
  int64_t tokens = 0;              // positions compared (= tokens scored)
  int64_t windows = 0;
  double max_abs_logit_diff = 0;   // max over positions and vocabulary of |logit_A - logit_B|
  double max_abs_logit = 0;        // max |logit_A| (the scale of the difference)
  double mean_kl = 0;              // mean over positions of KL(A || B), nats (softmax in double)
  double max_kl = 0;
  double ppl_a = 0, ppl_b = 0;     // perplexity of each model on the same windows
  int64_t greedy_agree = 0;        // positions where argmax A == argmax B
  double greedy_agreement = 0;     // greedy_agree / tokens
  std::vector<int32_t> gen_a, gen_b;  // greedy continuations (without the prompt)
  bool gen_identical = true;
  KvFootprint kv_a, kv_b;          // cache of each model, values of kv_dtype
  double seconds = 0;
};

// Runs both models (opts.open_a/open_b, by default a CPU Session; GQA or MLA as each config says). The models
// must have the same vocabulary size; ctx must fit both contexts.
CompareResult compare_models(const Model& a, const Model& b, std::span<const int32_t> ids, const CompareOptions& opts);

}  // namespace mlar
