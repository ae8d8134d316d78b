// Trainable MLA attention in the general form of model/mla.h (MLA.md §2):
//   q     = x W_q^T + b_q, or q_b(RMSNorm(x W_qa^T)) + b_q     [rows, n_h (qn + qin)]
//   c     = norm?(x W_dkv^T + b_dkv)                             [rows, r]
//   k_pe  = RoPE(x W_kr^T + b_kr)                                [rows, n_r d_r]
// Not absorbed: evaluated naively, per head
//   query [q_nope_h | RoPE(W_qr[h] q_rope_in_h)] (or RoPE(q_rope_in_h) without W_qr),
//   key   [W_uk[h] c | k_pe],  value W_uv[h] c,  out = att W_o^T.
// Stored absorption (mla.absorbed): every head attends over the shared rows
//   [c | k_pe] (keys) and c (values) with query [q_nope_h (r values) | RoPE(q_rope_h)],
//   out = o W_o^T with W_o reading r values per head.
// Scores are scaled by mla.softmax_scale; RoPE pairs follow config.rope_layout.
#pragma once
#include <vector>

#include "ops/rope.h"
#include "runtime/mla_layer_dims.h"
#include "train/attention_block.h"

namespace mlar::train {

class MlaBlock final : public AttentionBlock, private MlaLayerDims {
 public:
  MlaBlock(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w);
  std::unique_ptr<AttentionState> forward(const float* x, const BatchShape& b, float* out) const override;
  void backward(const float* x, const AttentionState& state, const BatchShape& b, const float* dout, float* dx,
                LayerWeights& grad) const override;

 private:
  const MlaLayerWeights& w_;
  int64_t dk_;  // per-head query/key width in the attention
};

}  // namespace mlar::train
