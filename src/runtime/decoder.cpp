#include "runtime/decoder.h"

#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "ops/swiglu.h"
#include "runtime/gqa_attention.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {
namespace {

// Workspace slots of the decoder (attention layers have a workspace of their own).
enum Slot : size_t { kH, kX, kAttn, kGate, kUp };

}  // namespace

std::vector<std::unique_ptr<Attention>> model_attention_layers(const Model& m, MlaEval eval) {
  m.config.validate(m.source);
  check_weight_shapes(m.config, m.weights, m.source);
  std::vector<std::unique_ptr<Attention>> out;
  if (m.config.mla) {
    for (int64_t l = 0; l < m.config.num_layers; ++l)
      out.push_back(std::make_unique<MlaAttention>(m.config, l, m.weights.layers[static_cast<size_t>(l)].mla, eval));
    return out;
  }
  if (eval != MlaEval::Auto)
    fail("{}: MLA evaluation '{}' asked for a GQA model (it applies to MLA models only)", m.source,
         mla_eval_name(eval));
  const auto inv_freq = rope_inv_freq(m.config);
  for (const auto& L : m.weights.layers) out.push_back(std::make_unique<GqaAttention>(m.config, L, inv_freq));
  return out;
}

Decoder::Decoder(const Model& model, MlaEval eval) : Decoder(model, model_attention_layers(model, eval)) {}

Decoder::Decoder(const Model& model, std::vector<std::unique_ptr<Attention>> attention)
    : model_(model), attn_(std::move(attention)) {
  if (static_cast<int64_t>(attn_.size()) != model.config.num_layers)
    fail("{}: {} attention layers for a model of {} layers", model.source, attn_.size(), model.config.num_layers);
  if (static_cast<int64_t>(model.weights.layers.size()) != model.config.num_layers)
    fail("{}: {} weight layers for a model of {} layers", model.source, model.weights.layers.size(),
         model.config.num_layers);
}

void decoder_layer_forward(const ModelConfig& c, const LayerWeights& L, const Attention& attn, float* h, int64_t n,
                           int64_t pos0, LayerCache& cache, ForwardScratch& scratch) {
  const int64_t D = c.hidden_size, F = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  Workspace& ws = scratch.decoder;
  float* x = ws.get(kX, n * D);        // [n, D] normalised input of a block
  float* a = ws.get(kAttn, n * D);     // [n, D] block output
  float* gate = ws.get(kGate, n * F);  // [n, F] gate, then silu(gate) * up
  float* up = ws.get(kUp, n * F);      // [n, F]
  ops::rmsnorm(h, L.attn_norm.ptr(), x, n, D, eps);
  attn.forward(x, n, pos0, cache, scratch.attention, a);
  ops::add_inplace(h, a, n * D);

  ops::rmsnorm(h, L.ffn_norm.ptr(), x, n, D, eps);
  ops::linear(x, L.w_gate, gate, n);
  ops::linear(x, L.w_up, up, n);
  ops::swiglu(gate, up, gate, n * F);
  ops::linear(gate, L.w_down, a, n);
  ops::add_inplace(h, a, n * D);
}

KvCache Decoder::make_cache(int64_t max_tokens, DType kv_dtype) const {
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (const auto& a : attn_) layers.push_back(a->make_cache(kv_dtype));
  return KvCache(std::move(layers), max_tokens);
}

void Decoder::forward(std::span<const int32_t> tokens, KvCache& cache, ForwardScratch& scratch, bool all_logits,
                      Tensor& logits) const {
  const ModelConfig& c = model_.config;
  const ModelWeights& W = model_.weights;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t D = c.hidden_size, V = c.vocab_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (n == 0) fail("forward: no tokens");
  for (int32_t t : tokens)
    if (t < 0 || t >= V) fail("forward: token id {} outside the vocabulary of {}", t, V);
  if (cache.n_layers() != n_layers()) fail("forward: cache has {} layers, model {}", cache.n_layers(), n_layers());
  cache.reserve_more(n);
  const int64_t pos0 = cache.size();

  float* h = scratch.decoder.get(kH, n * D);  // [n, D] residual stream
  ops::embed_rows(W.embed, tokens.data(), h, n);
  for (int64_t l = 0; l < n_layers(); ++l)
    decoder_layer_forward(c, W.layers[static_cast<size_t>(l)], *attn_[static_cast<size_t>(l)], h, n, pos0,
                          cache.layer(l), scratch);
  cache.advance(n);

  float* x = scratch.decoder.get(kX, n * D);  // [n, D]
  const int64_t rows = all_logits ? n : 1;
  const float* last = h + (n - rows) * D;
  ops::rmsnorm(last, W.final_norm.ptr(), x, rows, D, eps);
  if (logits.shape != Shape{rows, V}) logits = Tensor({rows, V});
  ops::linear(x, W.output(), logits.ptr(), rows);
}

}  // namespace mlar
