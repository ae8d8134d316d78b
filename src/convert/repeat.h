// The exact GQA -> MLA retrofit, RoPE mode `repeat` (MLA.md §3).
//
// Per layer, with n_kv key/value heads of size d, n_h query heads, j(h) = h / (n_h / n_kv):
//   k_pe  = W_k x (+ b_k)       n_r = n_kv rope heads of d_r = d, roped as the source
//   c     = W_v x (+ b_v)       latent of r = n_kv * d values, no latent norm
//   q     = W_q x (+ b_q)       per head: no NoPE part (d_n = 0), a rope input of d values
//   W_qr[h]  = W_uk[h]^T        [n_kv * d, d]: identity in block j(h), zeros elsewhere
//   W_uv[h]                     [d, n_kv * d]: identity in block j(h), zeros elsewhere
//   W_o unchanged, s = 1/sqrt(d); RoPE frequencies, scaling and row layout are the source's.
//   Qwen3 (q_norm, k_norm per head): kept as the MLA layer's qk norms: q_norm on each
//   head's rope input (the source q head), k_norm on each of the n_kv rope keys.
// The result computes exactly the source model's logits (up to float rounding).
#pragma once
#include <cstdint>
#include <functional>

#include "model/model.h"

namespace mlar {

struct RepeatOptions {
  // Latent layout (heads x head size) asked for; 0 = the source's (n_kv, d). Only the
  // source's split keeps the model exact, so any other is refused with the reason.
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  // Called after each layer with (layers done, layers).
  std::function<void(int64_t done, int64_t total)> progress;
};

// The MLA config of the repeat retrofit of `c` (a GQA config).
MlaConfig repeat_mla_config(const ModelConfig& c);

// Throws mlar::Error explaining why (num_kv_heads, head_dim) cannot keep the model
// exact; returns for 0/0 and for the source's own split.
void check_repeat_latent_layout(const ModelConfig& c, int64_t num_kv_heads, int64_t head_dim);

// Converts a GQA model. Refuses an MLA model ("already MLA (rope mode ...)"). The
// result shares the tokenizer, keeps source/config fields of the GQA model and has
// format "mla"; the GQA attention tensors are replaced by LayerWeights::mla.
Model convert_repeat(const Model& gqa, const RepeatOptions& opts = {});
// The same, reusing the source's tensors instead of copying them.
Model convert_repeat(Model&& gqa, const RepeatOptions& opts = {});

}  // namespace mlar
