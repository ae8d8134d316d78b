// One sequence run through a model, whatever the device: what evaluation and
// generation need. Session (the CPU runtime) and CudaSession (runtime/cuda, with
// -DMLAR_CUDA=ON) implement it; open_sequence (backend/) picks one by device.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "model/config.h"
#include "tensor/tensor.h"

namespace mlar {

enum class Logits { Last, All };

class Sequence {
 public:
  virtual ~Sequence() = default;
  // Runs `tokens` at positions n_past() .. n_past()+n-1 (prefill for n > 1, decode
  // for n == 1). Returns host logits: [n, V] for Logits::All, [1, V] for Logits::Last,
  // valid until the next call. Throws mlar::Error past the context limit or on an id
  // outside the vocabulary (the sequence is then unchanged).
  virtual const Tensor& forward(std::span<const int32_t> tokens, Logits which = Logits::Last) = 0;
  // The same forward pass scored instead of returned: nll[i] = log(sum_v exp(logit_i[v])) - logit_i[targets[i]]
  // (in double) for every position i of `tokens`; targets: [n] ids inside the vocabulary (else
  // mlar::Error, nothing run), nll: [n]. The default runs forward(tokens, Logits::All) and scores on the host; CudaSession
  // scores on the device and copies n doubles instead of [n, V] logits.
  virtual void forward_nll(std::span<const int32_t> tokens, std::span<const int32_t> targets, std::span<double> nll);
  const Tensor& prefill(std::span<const int32_t> tokens) { return forward(tokens, Logits::Last); }
  const Tensor& decode(int32_t token) { return forward(std::span<const int32_t>(&token, 1), Logits::Last); }
  virtual int64_t n_past() const = 0;      // tokens cached
  virtual int64_t max_tokens() const = 0;  // context limit
  virtual void reset() = 0;                // start a new sequence
  virtual const ModelConfig& config() const = 0;
  // The attention of layer 0 ("gqa", "mla-absorbed", ...) and where it runs, for reports.
  virtual std::string attention_kind() const = 0;
  virtual std::string device() const = 0;  // "cpu", "cuda"
  virtual int64_t kv_bytes_per_token() const = 0;  // over all layers, in the cache's dtype

 protected:
  // forward_nll's arguments: as many targets and outputs as tokens, targets inside the vocabulary.
  void check_nll_args(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                      std::span<double> nll) const;
};

}  // namespace mlar
