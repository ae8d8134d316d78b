// Multi-head Latent Attention in the general form of MLA.md §2, as the runtime
// evaluates it and this project's MLA format stores it.
//
//   c      = norm?(W_dkv x + b_dkv)          latent, r values        (cached)
//   k_pe   = RoPE(W_kr x + b_kr)             n_r heads of d_r values  (cached)
//   q      = W_q x + b_q  (or q_b(norm(q_a x)))  per head [q_nope | q_rope_in]
//   (qk_norm: RMSNorm q_norm on each head's q_rope_in, k_norm on each rope head of
//    W_kr x + b_kr, before W_qr and RoPE; Qwen3 sources in the repeat mode)
//   q_pe_h = W_qr[h] q_rope_in_h  when W_qr is present (exact `repeat` mode:
//            W_qr[h] = W_uk[h]^T, the key up-projection absorbed into the query),
//            else q_rope_in_h itself (n_r * d_r values); then RoPE per rope head
//   score  = (q_nope_h . W_uk[h] c  +  sum_r q_pe_h[r] . k_pe[r]) * s
//   (qk_scale_dim > 0, the extend retrofit of a Qwen3 model, MLA.md §4 and
//    docs/mla-format.md: the per-head RMSNorms as score scales. Query head h's whole
//    projected query is multiplied by t_h = 1/sqrt(mean((W_qs x)_h^2) + eps), and each
//    token caches, after [c | k_pe], s_j = 1/sqrt(mean((W_ks x)_j^2) + eps) for each
//    of the source's n_kv key heads j; head h's score against token n is multiplied
//    by s_{j(h)}(n), j(h) = h / (n_h / n_kv). The norms' weights are folded into the
//    linear projections, so this is Qwen3's attention with the rope split applied to
//    its un-normalised key.)
//   o_h    = W_uv[h] sum_n p_n c_n           (or W_o consumes the latent directly)
//   out    = W_o concat_h o_h
//
// Stored absorption (`--absorb`) removes the up-projections: W_uk folded into the
// nope rows of W_q (q_nope lives in latent space, width r), W_qr folded into the
// rope rows of W_q, W_uv folded into W_o (which then reads r values per head).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tensor/typed_tensor.h"

namespace mlar {

enum class RopeMode { Repeat, Extend };
const char* rope_mode_name(RopeMode m);

// The approximation made when a conversion removed a query bias that the DeepSeek
// formats cannot hold (convert_extend's --query-bias, convert/query_bias.h), with its
// cost measured on the calibration hold-out against the same conversion with the
// bias kept. Empty mode: none was made.
struct QueryBiasRemoval {
  std::string mode;                 // fold | mean | drop
  double max_abs_logit_diff = 0;    // max |logit_kept - logit|
  double ppl_kept = 0, ppl = 0;     // hold-out perplexity with the bias kept / removed
  int64_t tokens = 0;               // hold-out tokens compared
  bool empty() const { return mode.empty(); }
  std::string describe() const;     // one line for reports and export notes
};

struct MlaConfig {
  RopeMode rope_mode = RopeMode::Repeat;
  int64_t kv_lora_rank = 0;      // r (the widest layer's when ranks differ per layer)
  std::vector<int64_t> layer_kv_lora_rank;  // per layer r when not uniform; empty = uniform
  int64_t qk_nope_head_dim = 0;  // d_n (0 in the exact repeat mode)
  int64_t qk_rope_head_dim = 0;  // d_r
  int64_t num_rope_heads = 1;    // n_r: 1 (DeepSeek) or n_kv (repeat)
  int64_t v_head_dim = 0;        // d_v
  int64_t q_lora_rank = 0;       // 0 = full-rank W_q
  int64_t q_rope_in_dim = 0;     // width of each head's rope-query input when W_qr is
                                 // present (repeat: the source head size d); 0 = none
  bool latent_norm = false;      // RMSNorm (with weight) on the latent
  bool absorbed = false;         // stored absorption: no W_uk / W_uv / W_qr tensors
  // Per-head RMSNorms (weights q_norm [q_rope_in_dim], k_norm [d_r], the model's eps):
  // on each head's rope-query input before W_qr, on each rope head of k_pe before
  // RoPE. The repeat retrofit of a Qwen3 model (its q_norm / k_norm). Needs W_qr
  // (q_rope_in_dim > 0, not absorbed).
  bool qk_norm = false;
  // Per-head RMSNorms as score scales (see the top): the source head size whose rms
  // W_qs / W_ks rows are taken over (0 = none) and the number of key scales cached
  // per token (the source's n_kv). Extend mode, not absorbed.
  int64_t qk_scale_dim = 0;
  int64_t qk_scale_kv_heads = 0;
  // The latent is kept below sqrt(eps), where the latent norm is nearly linear (convert
  // --latent-scale linear, norm_fit.h): W_dkv's rows are scaled down by ~1e-4 and the
  // norm weight up. Evaluation is unaffected; training refuses such a model, since
  // optimiser steps of fixed size would swamp the down-scaled rows.
  bool latent_linear = false;
  double softmax_scale = 0.0;    // s
  // Inverse frequencies of the d_r/2 rope pairs when they are not those of a
  // head of size d_r with the source's theta and scaling (partial-RoPE strategies
  // keep an arbitrary subset of the source's frequencies). Empty = derived.
  std::vector<double> rope_inv_freq;
  QueryBiasRemoval query_bias;   // provenance only (no effect on evaluation)

  int64_t rank(int64_t layer) const {
    return layer_kv_lora_rank.empty() ? kv_lora_rank : layer_kv_lora_rank.at(layer);
  }
  int64_t rope_values() const { return num_rope_heads * qk_rope_head_dim; }
  // KV cache values per token of `layer`: r + n_r * d_r (+ the key scales).
  int64_t cache_values(int64_t layer) const { return rank(layer) + rope_values() + key_scales(); }
  int64_t key_scales() const { return qk_scale_dim > 0 ? qk_scale_kv_heads : 0; }
  // Per-head query widths as the q projection produces them.
  int64_t q_nope_width(int64_t layer) const { return absorbed ? rank(layer) : qk_nope_head_dim; }
  int64_t q_rope_width() const { return (q_rope_in_dim > 0 && !absorbed) ? q_rope_in_dim : rope_values(); }
};

struct MlaLayerWeights {
  TypedTensor wq;        // [n_h * (q_nope_width + q_rope_width), D] (empty with q_lora)
  TypedTensor bq;        // [n_h * (q_nope_width + q_rope_width)] or empty
  TypedTensor wq_a;      // [q_lora_rank, D]               (q_lora only)
  TypedTensor q_a_norm;  // [q_lora_rank]                  (q_lora only)
  TypedTensor wq_b;      // [n_h * (...), q_lora_rank]     (q_lora only)
  TypedTensor wqr;       // [n_h, n_r * d_r, q_rope_in_dim] W_uk[h]^T of the repeat mode; empty if none
  TypedTensor q_norm;    // [q_rope_in_dim] when qk_norm
  TypedTensor k_norm;    // [d_r] when qk_norm
  TypedTensor wq_scale;  // [n_h * qk_scale_dim, D] when qk_scale_dim > 0 (the query-norm probe)
  TypedTensor wk_scale;  // [qk_scale_kv_heads * qk_scale_dim, D] when qk_scale_dim > 0 (the key-norm probe)
  TypedTensor w_dkv;     // [r, D]
  TypedTensor b_dkv;     // [r] or empty
  TypedTensor kv_norm;   // [r] when latent_norm
  TypedTensor w_kr;      // [n_r * d_r, D]
  TypedTensor b_kr;      // [n_r * d_r] or empty
  TypedTensor w_uk;      // [n_h * d_n, r]  (empty when absorbed or d_n == 0)
  TypedTensor w_uv;      // [n_h * d_v, r]  (empty when absorbed)
  TypedTensor wo;        // [D, n_h * d_v], or [D, n_h * r] when absorbed
};

nlohmann::json mla_config_to_json(const MlaConfig& c);
MlaConfig mla_config_from_json(const nlohmann::json& j, const std::string& source);

}  // namespace mlar
