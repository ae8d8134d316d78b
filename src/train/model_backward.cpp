// TrainModel::backward: the chain rule through the whole decoder, top to bottom.
#include <algorithm>

#include "train/ops_embedding.h"
#include "train/ops_linear.h"
#include "train/ops_rmsnorm.h"
#include "train/ops_swiglu.h"
#include "train/params.h"
#include "train/train_model.h"
#include "util/error.h"

namespace mlar::train {
namespace {

float* opt(TypedTensor& t) { return t.empty() ? nullptr : t.ptr(); }

// True when layer l of g has any tensor to train.
bool layer_trained(ModelWeights& g, size_t l) {
  for (const auto& s : layer_tensor_slots(g.layers[l]))
    if (!s.tensor->empty()) return true;
  return false;
}

}  // namespace

void TrainModel::backward(const Activations& a, const float* dlogits, ModelWeights& g) const {
  const ModelConfig& c = model_.config;
  const ModelWeights& W = model_.weights;
  const int64_t N = a.shape.rows(), D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (static_cast<int64_t>(g.layers.size()) != c.num_layers)
    fail("train backward: gradients for {} layers, model has {}", g.layers.size(), c.num_layers);
  auto buf = [](int64_t n) { return std::vector<float>(static_cast<size_t>(n)); };

  // Lowest layer with a trained tensor; below it (and with a frozen embedding) no
  // gradient is needed.
  int64_t lowest = c.num_layers;
  for (int64_t l = 0; l < c.num_layers; ++l)
    if (layer_trained(g, static_cast<size_t>(l))) {
      lowest = l;
      break;
    }
  const bool embed_trained = !g.embed.empty();
  if (embed_trained) lowest = 0;

  // Output head and final norm. A tied head's gradient lands in the embedding's.
  TypedTensor& g_out = W.lm_head.empty() ? g.embed : g.lm_head;
  std::vector<float> dx = buf(N * D);  // [rows, D] gradient of a normalised input
  std::vector<float> dh = buf(N * D);  // [rows, D] gradient of the residual stream
  linear_backward(a.x_final.data(), W.output().ptr(), dlogits, dx.data(), false, opt(g_out), nullptr, {N, D, V});
  rmsnorm_backward(a.h_final.data(), W.final_norm.ptr(), dx.data(), dh.data(), false, opt(g.final_norm),
                   {N, D, 0, 0, eps});

  std::vector<float> dgate = buf(N * F), dup = buf(N * F);  // [rows, F]
  for (int64_t l = c.num_layers - 1; l >= lowest; --l) {
    const LayerWeights& L = W.layers[static_cast<size_t>(l)];
    LayerWeights& G = g.layers[static_cast<size_t>(l)];
    const LayerActivations& s = a.layers[static_cast<size_t>(l)];
    // MLP: h_out = h_mid + W_down(silu(gate) * up). dgate first holds d(act).
    linear_backward(s.act.data(), L.w_down.ptr(), dh.data(), dgate.data(), false, opt(G.w_down), nullptr, {N, F, D});
    swiglu_backward(s.gate.data(), s.up.data(), dgate.data(), dgate.data(), dup.data(), N * F);
    linear_backward(s.x_ffn.data(), L.w_gate.ptr(), dgate.data(), dx.data(), false, opt(G.w_gate), nullptr, {N, D, F});
    linear_backward(s.x_ffn.data(), L.w_up.ptr(), dup.data(), dx.data(), true, opt(G.w_up), nullptr, {N, D, F});
    rmsnorm_backward(s.h_mid.data(), L.ffn_norm.ptr(), dx.data(), dh.data(), true, opt(G.ffn_norm), {N, D, 0, 0, eps});
    // Attention: h_mid = h_in + Attention(rmsnorm(h_in, attn_norm)).
    const bool below = l > lowest || embed_trained || !G.attn_norm.empty();
    blocks_[static_cast<size_t>(l)]->backward(s.x_attn.data(), *s.attn, a.shape, dh.data(),
                                              below ? dx.data() : nullptr, G);
    if (!below) break;
    rmsnorm_backward(s.h_in.data(), L.attn_norm.ptr(), dx.data(), dh.data(), true, opt(G.attn_norm), {N, D, 0, 0, eps});
  }
  if (embed_trained) embedding_backward(a.tokens.data(), dh.data(), g.embed.ptr(), N, D);
}

}  // namespace mlar::train
