// Qwen3's per-head RMSNorms in the extend retrofit (MLA.md §4; docs/mla-format.md).
//
// Qwen3 normalises each query head and each key head before RoPE:
//   q^_h = gamma_q (.) q_h t_h,  t_h = 1/sqrt(mean(q_h^2) + eps),  q_h = W_q[h] x
//   k^_j = gamma_k (.) k_j s_j,  s_j = 1/sqrt(mean(k_j^2) + eps),  k_j = W_k[j] x
// Everything but the scalars t_h(x), s_j(x) is linear: the weights gamma fold into
// the rows of W_q and W_k. Both modes first replace the scalars by constants,
//   tau_h = 1/sqrt(E[mean(q_h^2)] + eps),  sigma_j = 1/sqrt(E[mean(k_j^2)] + eps)
// (expectations over the layer's calibration inputs, from S = E[[x;1][x;1]^T]: the
// scaled key has the normalised key's mean energy), folded into W_q[h] and W_k[j], so
// that the extend split (rope PCA across kv heads, low rank of [k_nope ; v], the
// attention metrics) weighs each head as the normalised model sees it. Then:
//   calibrated  that is the model: a plain extend model, exportable, at the cost of
//               each token's own scale.
//   cached      exact scales at run time: head h's query rows are divided by
//               tau_h sigma_j(h) (j(h) its kv group) and the runtime multiplies
//               score_h(m, n) by t_h(m) s_j(h)(n) (MlaConfig::qk_scale_dim): t_h from
//               the token's own query, s_j cached beside the latent (n_kv values per
//               token). The source W_q / W_k stay as the probes W_qs / W_ks. Full rank
//               reproduces the source up to the removed rope (the rope part of the
//               key sigma_j gamma_k (.) k_j, times s_j / sigma_j). Not exportable: no
//               DeepSeek format holds a per-head norm or a per-token key scale.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "convert/linalg.h"
#include "model/config.h"
#include "model/weights.h"

namespace mlar {

enum class QkNormMode { Auto, Cached, Calibrated };
const char* qk_norm_mode_name(QkNormMode m);
std::optional<QkNormMode> qk_norm_mode_from_name(const std::string& s);

struct LinearQk {
  LayerWeights layer;          // W_q rows times tau_h gamma_q, W_k rows times sigma_j gamma_k, no norms
  std::vector<double> tau;     // [n_h]
  std::vector<double> sigma;   // [n_kv]
};

// The layer's attention weights with the norms folded as above. S: the layer's
// second moment of [x;1]. Needs c.qk_norm.
LinearQk linear_qk_layer(const ModelConfig& c, const LayerWeights& src, const la::Mat& S);

// Cached: divides head h's query rows (per head [q_nope (d_n) | q_pe (d_r)] of wq, bq)
// by tau_h sigma_j(h) and adds the probes of the score scales (the source's raw
// W_q / W_k, views when the source's are).
void add_score_scales(MlaLayerWeights& w, const ModelConfig& c, const LayerWeights& src, const LinearQk& lin);

}  // namespace mlar
