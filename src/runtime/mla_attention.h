// Multi-head Latent Attention of one layer (MLA.md §2, model/mla.h), evaluated from
// MlaConfig / MlaLayerWeights alone: DeepSeek layout (n_r = 1, NoPE part, latent
// norm, q_lora), the exact `repeat` retrofit (n_r = n_kv, d_n = 0, W_qr), per-layer
// ranks, and stored absorption.
//
// Per token (x: the normalised hidden state):
//   q        = W_q x + b_q, or q_b(RMSNorm(q_a x)) + b_q     per head [q_nope | q_rope_in]
//   c        = norm?(W_dkv x + b_dkv)                         cached   [r]
//   k_pe     = RoPE(W_kr x + b_kr)                            cached   [n_r * d_r]
//   q_pe_h   = RoPE(W_qr[h] q_rope_in_h)  (or RoPE(q_rope_in_h) without W_qr)
//   with qk_norm (Qwen3 repeat): q_rope_in_h <- RMSNorm_qnorm(q_rope_in_h) and each
//   rope head of W_kr x + b_kr <- RMSNorm_knorm(.) before RoPE and caching
//   score_h(m, n) = s * (q_nope_h . W_uk[h] c_n + q_pe_h . k_pe_n),  n <= m (causal)
//   with score scales (qk_scale_dim, Qwen3 extend): q_h *= t_h(m) = 1/rms((W_qs x)_h),
//   each cache row also holds s_j(n) = 1/rms((W_ks x)_j), and score_h(m, n) *=
//   s_{j(h)}(n). The absorbed evaluation then scores through shared_kv_attention's
//   explicit score matrix (not the typed decode kernel), cache rows widened to f32.
//   out      = W_o concat_h W_uv[h] sum_n p_h(m, n) c_n
// RoPE runs on every rope head of d_r values, frequencies from the config's
// rope_theta / rope_scaling for head size d_r, pairs in config.rope_layout.
//
// The cache (MlaLayerCache) holds only [c | k_pe] per token. Two evaluations:
//   Naive:    expand k_h = [W_uk[h] c_n | k_pe_n] and v_h = W_uv[h] c_n for every
//             cached token, then ordinary causal attention (dk = d_n + n_r d_r,
//             dv = d_v). Its work and scratch grow with cached tokens x heads.
//   Absorbed: qt_h = [W_uk[h]^T q_nope_h | q_pe_h] in latent space; every head
//             attends over the cache rows themselves (keys [c | k_pe], values c),
//             o_h = sum_n p_n c_n, then v_h = W_uv[h] o_h. Per-token work is one
//             pass over the cache rows for all heads.
// When no NoPE part scores (d_n = 0, or stored-absorbed with all-zero NoPE query
// rows, as `--absorb` of a repeat model produces), the keys are k_pe alone.
// Stored-absorbed models (mla.absorbed) hold no W_uk / W_uv / W_qr: q_nope is
// already qt_h (width r), W_o reads the r latent values of each head. There is
// nothing per head to expand, so Naive evaluates them exactly as Absorbed does.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/mla.h"
#include "ops/rope.h"
#include "runtime/attention.h"
#include "runtime/mla_cache.h"
#include "runtime/mla_layer_dims.h"

namespace mlar {

// How MLA layers evaluate attention. Auto picks per forward call (see
// MlaAttention::evaluation).
enum class MlaEval { Auto, Naive, Absorbed };
const char* mla_eval_name(MlaEval e);  // "auto", "naive", "absorbed"
std::optional<MlaEval> mla_eval_from_name(const std::string& name);

class MlaAttention final : public Attention, private MlaLayerDims {
 public:
  // Layer `layer` of a model whose config.mla is set; checks w against
  // check_mla_layer_shapes. Keeps pointers to w's tensors: they must outlive this.
  MlaAttention(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w, MlaEval eval = MlaEval::Auto);

  // "mla-auto", "mla-naive", "mla-absorbed"; "mla-stored-absorbed" for stored absorption.
  std::string kind() const override;
  std::unique_ptr<LayerCache> make_cache(DType dtype) const override;
  void forward(const float* x, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws,
               float* out) const override;

  // The absorbed evaluation's attention alone, for n tokens at pos0 .. pos0+n-1 (the
  // cache rows written as forward writes them): o [n, H, r], o_h = sum_t p_h(t) c_t,
  // the latent rows averaged under each head's probabilities, before W_uv and W_o
  // (stored-absorbed layers: before W_o'). forward's output is W_o concat_h W_uv[h] o_h.
  void attend_latents(const float* x, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws, float* o) const;

  MlaEval mode() const { return eval_; }
  // The evaluation forward uses for n tokens after `cached` ones: Naive or
  // Absorbed (stored-absorbed models: always Absorbed). Auto: Naive for a prompt
  // (n >= 64 and n >= cached), Absorbed for decode and chunks after a longer cache
  // (measurements in mla_attention.cpp).
  MlaEval evaluation(int64_t n, int64_t cached) const;
  int64_t rank() const { return r_; }
  // False when the NoPE part cannot contribute to scores (d_n = 0, or stored
  // absorption with all-zero NoPE query rows): keys are then k_pe alone.
  bool nope_scores() const { return nope_; }

 private:
  // Roped q_pe of every head into dst + t * dst_stride + h * dst_head (n_r * d_r values).
  void rope_queries(const float* q, int64_t n, const int64_t* pos, float* dst, int64_t dst_stride,
                    int64_t dst_head) const;
  void forward_naive(const float* q, int64_t n, int64_t pos0, const int64_t* pos, const MlaLayerCache& cache,
                     Workspace& ws, float* out) const;
  MlaLayerCache& checked_cache(LayerCache& cache) const;
  // The queries [n, H * (qn + qin)] (in ws), after writing the new cache rows and the positions (ws slot kPos).
  const float* queries_and_rows(const float* x, int64_t n, int64_t pos0, MlaLayerCache& cache, Workspace& ws) const;
  // o [n, H, r] = sum_t p_h(t) c_t (attend_latents).
  void attend_absorbed(const float* q, int64_t n, int64_t pos0, const int64_t* pos, const MlaLayerCache& cache,
                       Workspace& ws, float* o) const;

  const MlaLayerWeights& w_;
  MlaEval eval_;
  // float32 values of W_qr, W_uk, W_uv (null when absent): the weights' own when F32,
  // else the widened copies below.
  Tensor wqr32_, wuk32_, wuv32_;
  const float* wqr_ = nullptr;
  const float* wuk_ = nullptr;
  const float* wuv_ = nullptr;
  bool nope_;  // see nope_scores()
};

}  // namespace mlar
