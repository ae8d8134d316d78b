// A model's forward pass for training, keeping every activation the backward needs,
// and the backward into the model's parameters (model_backward.cpp):
//   h = embed[tokens]                                             [rows, D]
//   per layer: x = rmsnorm(h, attn_norm); h += Attention(x)       (attention_block.h)
//              x = rmsnorm(h, ffn_norm);  h += W_down(silu(W_gate x) * W_up x)
//   logits = rmsnorm(h, final_norm) W_out^T                       [rows, V], tied or lm_head
// The batch is B sequences of L tokens, each starting at position 0.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/model.h"
#include "train/attention_block.h"

namespace mlar::train {

struct LayerActivations {
  std::vector<float> h_in;      // [rows, D] residual stream entering the layer
  std::vector<float> x_attn;    // [rows, D] rmsnorm(h_in, attn_norm)
  std::unique_ptr<AttentionState> attn;
  std::vector<float> attn_out;  // [rows, D] the attention block's output
  std::vector<float> h_mid;     // [rows, D] h_in + attn_out
  std::vector<float> x_ffn;     // [rows, D] rmsnorm(h_mid, ffn_norm)
  std::vector<float> gate;      // [rows, F] x_ffn W_gate^T
  std::vector<float> up;        // [rows, F] x_ffn W_up^T
  std::vector<float> act;       // [rows, F] silu(gate) * up
};

struct Activations {
  BatchShape shape;
  std::vector<int32_t> tokens;  // [rows]
  std::vector<LayerActivations> layers;
  std::vector<float> h_final;   // [rows, D] residual stream after the last layer
  std::vector<float> x_final;   // [rows, D] rmsnorm(h_final, final_norm)
  std::vector<float> logits;    // [rows, V]
};

class TrainModel {
 public:
  // One attention block per layer (GQA or MLA as the config says). Keeps a
  // reference to `model`, whose weights may change between calls (training).
  explicit TrainModel(const Model& model);

  const Model& model() const { return model_; }
  const AttentionBlock& attention(int64_t layer) const { return *blocks_.at(static_cast<size_t>(layer)); }

  // tokens: [b.rows()] ids. Fills every field of `a`.
  void forward(std::span<const int32_t> tokens, const BatchShape& b, Activations& a) const;

  // dlogits: [rows, V] = dL/dlogits. Adds dL/dparam into the non-empty tensors of
  // `grad` (make_gradients); stops descending once no lower tensor is trained.
  void backward(const Activations& a, const float* dlogits, ModelWeights& grad) const;

 private:
  const Model& model_;
  std::vector<std::unique_ptr<AttentionBlock>> blocks_;
};

}  // namespace mlar::train
