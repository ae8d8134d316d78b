// One layer's attention block for training: forward over a batch of sequences that
// keeps what the backward needs, and the backward into the input and into the
// layer's attention tensors. GQA (gqa_block.h) and MLA in the general form of
// model/mla.h (mla_block.h) implement it; the math is the ops_* functions.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace mlar::train {

// B sequences of L tokens each, rows sequence-major (row s * L + t is token t of
// sequence s, at position t: every sequence starts at position 0).
struct BatchShape {
  int64_t n_seq = 0;
  int64_t len = 0;
  int64_t rows() const { return n_seq * len; }
  std::vector<int64_t> positions() const;  // [rows]: row % len
};

// What a block's forward keeps for its backward (one subclass per block type).
class AttentionState {
 public:
  virtual ~AttentionState() = default;
};

class AttentionBlock {
 public:
  virtual ~AttentionBlock() = default;

  // x: [rows, D] the normalised input; out: [rows, D] the block's output (after the
  // output projection). Returns the saved activations.
  virtual std::unique_ptr<AttentionState> forward(const float* x, const BatchShape& b, float* out) const = 0;

  // dout: [rows, D] = dL/dout. dx: [rows, D] overwritten with dL/dx (null: not
  // needed). Gradients of the layer's attention tensors are ADDED to the tensors of
  // `grad` that are non-empty (an empty one is not trained and not computed):
  // grad.wq/wk/wv/wo/bq/bk/bv for GQA, grad.mla.* for MLA.
  virtual void backward(const float* x, const AttentionState& state, const BatchShape& b, const float* dout,
                        float* dx, LayerWeights& grad) const = 0;
};

// The block of `layer` as the config says (GQA, or MLA when c.mla is set). Keeps a
// reference to `w`, which must outlive it; shapes are checked.
std::unique_ptr<AttentionBlock> make_attention_block(const ModelConfig& c, int64_t layer, const LayerWeights& w);

}  // namespace mlar::train
