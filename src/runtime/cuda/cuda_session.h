// A Sequence on a GPU: the model's weights uploaded once (in their file dtype; norms
// and biases f32), the KV cache in device memory (F32 | BF16 | F16), the forward pass
// of runtime/decoder.h run by ops/cuda, host logits out. GQA models (Llama, Qwen2,
// Qwen3, Mistral layouts) and MLA models (runtime/cuda/cuda_mla_layer.h: always the
// absorbed evaluation, over the latent cache) run here.
//
// Against the CPU Session on the same model: the same f32 arithmetic on the same
// rounded weights and cache values, other summation orders (the projections of
// prompts of more than ops/cuda kGemvRows tokens go through cuBLAS SGEMM).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "model/model.h"
#include "runtime/sequence.h"
#include "runtime/session.h"  // SessionOptions

namespace mlar {

class CudaSession final : public Sequence {
 public:
  // Uploads `model` (which must outlive the session). Throws mlar::Error without a GPU
  // or for a model this backend does not run.
  CudaSession(const Model& model, SessionOptions opts = {});
  ~CudaSession() override;
  CudaSession(const CudaSession&) = delete;
  CudaSession& operator=(const CudaSession&) = delete;

  const Tensor& forward(std::span<const int32_t> tokens, Logits which = Logits::Last) override;
  // Scores on the device: only the n NLLs come back (not [n, V] logits).
  void forward_nll(std::span<const int32_t> tokens, std::span<const int32_t> targets, std::span<double> nll) override;
  int64_t n_past() const override { return n_past_; }
  int64_t max_tokens() const override { return max_tokens_; }
  void reset() override { n_past_ = 0; }
  const ModelConfig& config() const override { return model_.config; }
  std::string attention_kind() const override;
  std::string device() const override { return "cuda"; }
  int64_t kv_bytes_per_token() const override;
  // Benchmarks of long contexts without a prefill: positions n_past() .. n_past()+n-1
  // become cached tokens whose rows are zero (attention then reads them like any
  // others). Throws past the context limit.
  void advance_zero(int64_t n);
  // Bytes of device memory the weights and the cache take.
  size_t weight_bytes() const;
  size_t cache_bytes() const;

 private:
  // The forward pass; returns the device logits of the last `rows` positions ([rows, V], valid until the
  // next call).
  const float* run(std::span<const int32_t> tokens, int64_t rows);
  struct State;
  const Model& model_;
  int64_t max_tokens_ = 0, n_past_ = 0;
  std::unique_ptr<State> s_;
  Tensor logits_;  // [rows, V] on the host
};

}  // namespace mlar
