// The forward pass of a decoder-only transformer over a Model:
//   h = embed[tokens]                                   [n, D]
//   per layer: h += Attention(rmsnorm(h, attn_norm))   (pluggable, see attention.h)
//              h += W_down (silu(W_gate x) * W_up x),  x = rmsnorm(h, ffn_norm)
//   logits = output_head(rmsnorm(h, final_norm))        [rows, V], tied or lm_head
// It holds no per-sequence state (that is a KvCache) and points into the Model's
// weights: the Model must outlive the Decoder. The attention of each layer is GQA
// (MLA.md §1) or, when config.mla is set, MLA (§2, runtime/mla_attention.h).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/model.h"
#include "runtime/attention.h"
#include "runtime/kv_cache.h"
#include "runtime/mla_attention.h"
#include "runtime/workspace.h"

namespace mlar {

// Scratch for Decoder::forward, reused across calls (one per session).
struct ForwardScratch {
  Workspace decoder;    // residual stream, norms, MLP
  Workspace attention;  // shared by the attention layers (they run one at a time)
};

// The attention layers the model's config and weights describe (shapes checked):
// GqaAttention for a GQA model, MlaAttention evaluated by `eval` when config.mla is
// set (per-layer ranks included). `eval` other than Auto on a GQA model is an error.
std::vector<std::unique_ptr<Attention>> model_attention_layers(const Model& model, MlaEval eval = MlaEval::Auto);

// One decoder layer on the residual stream h [n, D] (in place) at positions
// pos0 .. pos0+n-1: h += attn(rmsnorm(h, attn_norm)); h += MLP(rmsnorm(h, ffn_norm)),
// with L's norms and MLP. `cache` must have room for n more tokens. Decoder::forward
// runs exactly this per layer (scratch.decoder slots other than the residual).
void decoder_layer_forward(const ModelConfig& c, const LayerWeights& L, const Attention& attn, float* h, int64_t n,
                           int64_t pos0, LayerCache& cache, ForwardScratch& scratch);

class Decoder {
 public:
  // The model's own attention in every layer (model_attention_layers): GQA, or MLA
  // evaluated by `eval` (Auto: per call, see MlaAttention::evaluation).
  explicit Decoder(const Model& model, MlaEval eval = MlaEval::Auto);
  // Caller-supplied attention per layer (one per layer; e.g. MLA). The model's
  // embedding, norms, MLP and output head are used; its attention tensors are not read.
  Decoder(const Model& model, std::vector<std::unique_ptr<Attention>> attention);

  const Model& model() const { return model_; }
  const ModelConfig& config() const { return model_.config; }
  int64_t n_layers() const { return static_cast<int64_t>(attn_.size()); }
  const Attention& attention(int64_t layer) const { return *attn_.at(static_cast<size_t>(layer)); }

  // An empty cache for one sequence of at most max_tokens positions, values stored
  // as `kv_dtype` (F32 | BF16 | F16; F32 keeps the forward pass exact).
  KvCache make_cache(int64_t max_tokens, DType kv_dtype = DType::F32) const;

  // Runs `tokens` at positions cache.size() .. cache.size()+n-1, appends them to the
  // cache, and writes logits into `logits`: [n, V] when all_logits, else [1, V] for
  // the last token. Throws mlar::Error on an id outside the vocabulary or past the
  // context limit (the cache is then unchanged).
  void forward(std::span<const int32_t> tokens, KvCache& cache, ForwardScratch& scratch, bool all_logits,
               Tensor& logits) const;

 private:
  const Model& model_;
  std::vector<std::unique_ptr<Attention>> attn_;
};

}  // namespace mlar
