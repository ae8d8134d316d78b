#include "train/train_model.h"

#include <algorithm>

#include "ops/elementwise.h"
#include "ops/swiglu.h"
#include "train/ops_linear.h"
#include "train/ops_rmsnorm.h"
#include "util/error.h"

namespace mlar::train {

TrainModel::TrainModel(const Model& model) : model_(model) {
  model.config.validate(model.source);
  check_weight_shapes(model.config, model.weights, model.source);
  for (int64_t l = 0; l < model.config.num_layers; ++l)
    blocks_.push_back(make_attention_block(model.config, l, model.weights.layers[static_cast<size_t>(l)]));
}

void TrainModel::forward(std::span<const int32_t> tokens, const BatchShape& b, Activations& a) const {
  const ModelConfig& c = model_.config;
  const ModelWeights& W = model_.weights;
  const int64_t N = b.rows(), D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (static_cast<int64_t>(tokens.size()) != N || N <= 0)
    fail("train forward: {} tokens for a batch of {} x {}", tokens.size(), b.n_seq, b.len);
  if (b.len > c.max_position_embeddings)
    fail("train forward: sequences of {} exceed the model's context of {}", b.len, c.max_position_embeddings);
  for (int32_t t : tokens)
    if (t < 0 || t >= V) fail("train forward: token id {} outside the vocabulary of {}", t, V);
  auto buf = [](int64_t n) { return std::vector<float>(static_cast<size_t>(n)); };

  a.shape = b;
  a.tokens.assign(tokens.begin(), tokens.end());
  a.layers.clear();
  a.layers.resize(static_cast<size_t>(c.num_layers));
  std::vector<float> h = buf(N * D);  // [rows, D] residual stream
  ops::gather_rows(W.embed.ptr(), tokens.data(), h.data(), N, D);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = W.layers[static_cast<size_t>(l)];
    LayerActivations& s = a.layers[static_cast<size_t>(l)];
    s.h_in = h;
    s.x_attn = buf(N * D);
    rmsnorm_forward(h.data(), L.attn_norm.ptr(), s.x_attn.data(), {N, D, 0, 0, eps});
    s.attn_out = buf(N * D);
    s.attn = blocks_[static_cast<size_t>(l)]->forward(s.x_attn.data(), b, s.attn_out.data());
    ops::add_inplace(h.data(), s.attn_out.data(), N * D);
    s.h_mid = h;
    s.x_ffn = buf(N * D);
    rmsnorm_forward(h.data(), L.ffn_norm.ptr(), s.x_ffn.data(), {N, D, 0, 0, eps});
    s.gate = buf(N * F);
    s.up = buf(N * F);
    s.act = buf(N * F);
    linear_forward(s.x_ffn.data(), L.w_gate.ptr(), nullptr, s.gate.data(), {N, D, F});
    linear_forward(s.x_ffn.data(), L.w_up.ptr(), nullptr, s.up.data(), {N, D, F});
    ops::swiglu(s.gate.data(), s.up.data(), s.act.data(), N * F);
    std::vector<float> down = buf(N * D);  // [rows, D]
    linear_forward(s.act.data(), L.w_down.ptr(), nullptr, down.data(), {N, F, D});
    ops::add_inplace(h.data(), down.data(), N * D);
  }
  a.h_final = std::move(h);
  a.x_final = buf(N * D);
  rmsnorm_forward(a.h_final.data(), W.final_norm.ptr(), a.x_final.data(), {N, D, 0, 0, eps});
  a.logits = buf(N * V);
  linear_forward(a.x_final.data(), W.output().ptr(), nullptr, a.logits.data(), {N, D, V});
}

}  // namespace mlar::train
