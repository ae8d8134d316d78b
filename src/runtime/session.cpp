#include "runtime/session.h"

namespace mlar {
namespace {

int64_t context_limit(const ModelConfig& c, const SessionOptions& o) {
  return o.max_tokens > 0 ? o.max_tokens : c.max_position_embeddings;
}

}  // namespace

Session::Session(const Model& model, SessionOptions opts)
    : Session(std::make_shared<const Decoder>(model, opts.mla_eval), opts) {}

Session::Session(std::shared_ptr<const Decoder> decoder, SessionOptions opts)
    : decoder_(std::move(decoder)), cache_(decoder_->make_cache(context_limit(decoder_->config(), opts), opts.kv_dtype)) {}

const Tensor& Session::forward(std::span<const int32_t> tokens, Logits which) {
  decoder_->forward(tokens, cache_, scratch_, which == Logits::All, logits_);
  return logits_;
}

}  // namespace mlar
