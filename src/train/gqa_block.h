// Trainable GQA attention (MLA.md §1):
//   q = x W_q^T + b_q  [rows, n_h d],  k = x W_k^T + b_k,  v = x W_v^T + b_v  [rows, n_kv d]
//   with qk_norm (Qwen3): q, k <- RMSNorm_{q_norm, k_norm}(each head's d values)
//   RoPE on q and k (the model's layout), causal attention per sequence,
//   out = att W_o^T.
#pragma once
#include <vector>

#include "ops/rope.h"
#include "train/attention_block.h"

namespace mlar::train {

class GqaBlock final : public AttentionBlock {
 public:
  GqaBlock(const ModelConfig& c, const LayerWeights& w);
  std::unique_ptr<AttentionState> forward(const float* x, const BatchShape& b, float* out) const override;
  void backward(const float* x, const AttentionState& state, const BatchShape& b, const float* dout, float* dx,
                LayerWeights& grad) const override;

 private:
  const LayerWeights& w_;
  int64_t D_, H_, J_, d_;
  bool qk_norm_;
  float eps_;
  ops::RopePairs pairs_;
  std::vector<float> inv_freq_;  // [d/2]
};

}  // namespace mlar::train
