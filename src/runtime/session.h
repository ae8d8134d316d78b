// A Session runs one sequence through a Decoder: it owns the KV cache and the
// scratch buffers, and tracks the next position.
//
//   Session s(model);                      // decoder over `model` (GQA or MLA)
//   const Tensor& l = s.prefill(ids);      // [1, V] logits after the last id
//   const Tensor& l2 = s.decode(next_id);  // [1, V]
//   s.forward(ids, Logits::All);           // [n, V], one row per id
#pragma once
#include <cstdint>
#include <memory>
#include <span>

#include "model/model.h"
#include "runtime/decoder.h"
#include "runtime/kv_cache.h"
#include "runtime/sequence.h"

namespace mlar {

struct SessionOptions {
  // Context limit (positions 0 .. max_tokens-1); 0 = config.max_position_embeddings.
  int64_t max_tokens = 0;
  // How MLA layers evaluate attention (MLA models only; anything but Auto on a GQA
  // model is an error).
  MlaEval mla_eval = MlaEval::Auto;
  // How the KV cache stores values: F32 (exact, the library default), BF16 or F16
  // (half the bytes; K/V rounded to nearest even when written).
  DType kv_dtype = DType::F32;
};

class Session final : public Sequence {
 public:
  // Decoder(model, opts.mla_eval) over `model` (which must outlive the session).
  explicit Session(const Model& model, SessionOptions opts = {});
  // Any decoder, e.g. one with MLA layers (the decoder's model must outlive it).
  explicit Session(std::shared_ptr<const Decoder> decoder, SessionOptions opts = {});

  // Runs `tokens` at positions n_past() .. n_past()+n-1 (prefill for n > 1, decode
  // for n == 1). Returns logits: [n, V] for Logits::All, [1, V] for Logits::Last.
  // The reference stays valid until the next call. Throws mlar::Error past the
  // context limit or on an id outside the vocabulary (the session is then unchanged).
  const Tensor& forward(std::span<const int32_t> tokens, Logits which = Logits::Last) override;
  using Sequence::decode;
  using Sequence::prefill;

  int64_t n_past() const override { return cache_.size(); }  // tokens cached
  int64_t max_tokens() const override { return cache_.max_tokens(); }  // context limit
  void reset() override { cache_.clear(); }  // start a new sequence
  void truncate(int64_t n) { cache_.truncate(n); }           // forget positions >= n

  const KvCache& cache() const { return cache_; }
  const Decoder& decoder() const { return *decoder_; }
  const ModelConfig& config() const override { return decoder_->config(); }
  std::string attention_kind() const override { return decoder_->attention(0).kind(); }
  std::string device() const override { return "cpu"; }
  int64_t kv_bytes_per_token() const override { return cache_.bytes_per_token(); }

 private:
  std::shared_ptr<const Decoder> decoder_;
  KvCache cache_;
  ForwardScratch scratch_;
  Tensor logits_;  // [rows, V]
};

}  // namespace mlar
