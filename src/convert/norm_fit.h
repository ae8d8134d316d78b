// The two RMSNorms a DeepSeek-layout layer may carry, fitted on calibration samples
// (a Reservoir of attention inputs x, calib_stats.h); neither can be exact, since
// RMSNorm divides every token by its own rms:
//   latent norm   kv_norm weight w for c = W_dkv x + b_dkv, per coordinate the least
//                 squares fit of RMSNorm(c) * w to c:
//                   w_i = E[c_i^2 / rho] / E[c_i^2 / rho^2],  rho = sqrt(mean(c^2) + eps)
//   q_lora        q = W_q x + b_q  ->  q_b RMSNorm(q_a x) + b_q':
//                 q_a = the leading r right singular directions of W_q E[x x^T]^(1/2)
//                 (activation-aware SVD; rows normalised), q_a_norm = 1, and
//                 [q_b | b_q'] the least-squares fit of q on [RMSNorm(q_a x); 1].
#pragma once
#include <cstdint>

#include "convert/calib_stats.h"
#include "model/mla.h"

namespace mlar {

// Rescales latent coordinate i by d_i = (E[c_i^2] / mean_j E[c_j^2])^(-alpha/2)
// (row i of w_dkv and b_dkv times d_i, column i of w_uk and w_uv over d_i: the same
// model without a norm), alpha in {0, 1/4, 1/2, 3/4, 1} chosen on the samples to
// minimise sum_i g_i E[(c_i - RMSNorm(d c)_i w_i / d_i)^2], with w the norm that
// fit_latent_norm then fits and g_i the energy of column i of W_uk and W_uv. The
// norm divides every token by its own rms: alpha = 1 (equal second moments) makes
// that rms vary least across tokens for Gaussian latents, while alpha = 0 keeps the
// coordinates that matter most largest. Returns alpha.
double scale_latent_for_norm(MlaLayerWeights& w, const Reservoir& xs, double eps);

// kv_norm [r] for the layer's w_dkv / b_dkv.
Tensor fit_latent_norm(const MlaLayerWeights& w, const Reservoir& xs, double eps);

// Replaces w.wq / w.bq by wq_a, q_a_norm, wq_b, bq (rank q_rank). S: the layer's
// E[[x;1][x;1]^T]. intercept false: q_b is fitted without the intercept column (no
// bq; the fit of the biased query on RMSNorm(q_a x) alone, query_bias.h).
void factor_query(MlaLayerWeights& w, int64_t q_rank, const la::Mat& S, const Reservoir& xs, double eps,
                  bool intercept = true);

}  // namespace mlar
