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

// How scale_latent_for_norm rescaled the latent.
struct LatentScale {
  double alpha = 0;  // coordinate balance exponent
  double kappa = 0;  // the latent's rms as a multiple of sqrt(eps) (0: size left as it was)
  double sigma = 1;  // the overall factor that gives it (folded into the norm weight)
};
// The kappa tried: 0 (the latent's own size) and sizes well below sqrt(eps).
inline constexpr double kLatentKappas[] = {0.0, 0.3, 0.1};

// Rescales latent coordinate i by d_i = (E[c_i^2] / mean_j E[c_j^2])^(-alpha/2)
// (row i of w_dkv and b_dkv times d_i, column i of w_uk and w_uv over d_i: the same
// model without a norm) and then the whole latent by sigma (rows of w_dkv and b_dkv
// only: fit_latent_norm's weight takes 1/sigma, so the normalised latent, the cached
// one, keeps its size). alpha in {0, 1/4, 1/2, 3/4, 1} and kappa in kLatentKappas are
// chosen on the samples to minimise sum_i g_i E[(c_i - RMSNorm(d c)_i w_i / d_i)^2],
// with w the norm that fit_latent_norm then fits and g_i the energy of column i of
// W_uk and W_uv.
// The norm divides every token by its own rms, sqrt(mean(c^2) + eps): alpha = 1
// (equal second moments) makes that rms vary least across tokens for Gaussian
// latents, alpha = 0 keeps the coordinates that matter most largest; a latent whose
// rms is kappa sqrt(eps) with kappa << 1 sees a divisor within a factor
// sqrt(1 + kappa^2 u) of the constant sqrt(eps) (u: the token's mean square over the
// average), so the norm is linear to that accuracy and the exported model computes
// what the unnormalised one did. The pre-norm latent is then small (kappa sqrt(eps):
// 1e-4 at eps 1e-6, kappa 0.1), which bf16 and f32 hold at full relative precision and
// f16 in its normal range; the cache holds the normalised latent at its usual size.
// linear false: kappa 0 only (the latent keeps its own size: a model that will be
// trained further, whose optimiser steps would swamp weights scaled down by sigma).
LatentScale scale_latent_for_norm(MlaLayerWeights& w, const Reservoir& xs, double eps, bool linear = true);

// kv_norm [r] for the layer's w_dkv / b_dkv, fitted so that RMSNorm(c) * kv_norm
// approximates c / sigma (sigma: the factor scale_latent_for_norm applied).
Tensor fit_latent_norm(const MlaLayerWeights& w, const Reservoir& xs, double eps, double sigma = 1.0);

// Replaces w.wq / w.bq by wq_a, q_a_norm, wq_b, bq (rank q_rank). S: the layer's
// E[[x;1][x;1]^T]. intercept false: q_b is fitted without the intercept column (no
// bq; the fit of the biased query on RMSNorm(q_a x) alone, query_bias.h).
void factor_query(MlaLayerWeights& w, int64_t q_rank, const la::Mat& S, const Reservoir& xs, double eps,
                  bool intercept = true);

}  // namespace mlar
