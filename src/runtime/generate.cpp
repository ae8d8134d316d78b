#include "runtime/generate.h"

#include <chrono>

#include "util/error.h"

namespace mlar {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::span<const float> last_row(const Tensor& logits) {
  const int64_t V = logits.shape.back();
  return {logits.ptr() + (logits.dim(0) - 1) * V, static_cast<size_t>(V)};
}

}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Eos: return "eos";
    case StopReason::MaxTokens: return "max-tokens";
    case StopReason::ContextFull: return "context-full";
    case StopReason::Callback: return "callback";
  }
  return "?";
}

GenerateStats generate(Sequence& session, std::span<const int32_t> prompt, const GenerateOptions& opts,
                       const OnToken& on_token) {
  if (prompt.empty()) fail("generate: empty prompt (it should at least hold BOS)");
  GenerateStats st;
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  Sampler sampler(opts.sampling);
  const int32_t eos = session.config().eos_token_id;
  using clock = std::chrono::steady_clock;
  auto sampled_row = [&](const Tensor& logits) {
    std::span<const float> row = last_row(logits);
    if (opts.sample_vocab > 0 && static_cast<size_t>(opts.sample_vocab) < row.size())
      row = row.first(static_cast<size_t>(opts.sample_vocab));
    return row;
  };

  auto t0 = clock::now();
  int32_t tok = sampler.sample(sampled_row(session.prefill(prompt)));
  st.prefill_seconds = seconds_since(t0);

  int64_t decode_forwards = 0;
  while (true) {
    if (opts.max_new_tokens <= st.generated_tokens) {
      st.stop = StopReason::MaxTokens;
      break;
    }
    if (opts.stop_at_eos && tok == eos) {
      st.stop = StopReason::Eos;
      break;
    }
    if (session.n_past() >= session.max_tokens()) {  // the prompt filled the context
      st.stop = StopReason::ContextFull;
      break;
    }
    ++st.generated_tokens;  // tok now sits at position n_past()
    if (on_token && !on_token(tok)) {  // (callback time is not counted as decode time)
      st.stop = StopReason::Callback;
      break;
    }
    if (st.generated_tokens >= opts.max_new_tokens) {
      st.stop = StopReason::MaxTokens;
      break;
    }
    if (session.n_past() + 1 >= session.max_tokens()) {  // no room for the token after tok
      st.stop = StopReason::ContextFull;
      break;
    }
    t0 = clock::now();
    tok = sampler.sample(sampled_row(session.decode(tok)));
    st.decode_seconds += seconds_since(t0);
    ++decode_forwards;
  }
  st.prefill_tok_s = st.prefill_seconds > 0 ? static_cast<double>(st.prompt_tokens) / st.prefill_seconds : 0;
  st.decode_tok_s = st.decode_seconds > 0 ? static_cast<double>(decode_forwards) / st.decode_seconds : 0;
  return st;
}

GenerateStats generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& opts,
                       const OnToken& on_token) {
  SessionOptions so;
  so.max_tokens = opts.max_tokens;
  Session session(model, so);
  return generate(session, prompt, opts, on_token);
}

}  // namespace mlar
