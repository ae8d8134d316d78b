// One layer of the `extend` retrofit (MLA.md §4), from the source GQA layer and its
// calibration second moment S = E[[x;1][x;1]^T]:
//   split_layer     RoPE separation (rope_split.h): the shared rope key k_pe (d_r
//                   values), each head's query [q_nope (d) | q_pe (d_r)], and
//                   z = [k_nope ; v], all as affine maps of [x;1]. q_nope = q_h, or
//                   with mean_rotation q_nope = M_h^T q_h pair by pair, M_h,i =
//                   E_p[R_{-w_i t}] the mean rotation head h's attention sees at
//                   frequency i (attn_stats.h): the NoPE part then scores
//                   q . E_p[R] k instead of q . k, the least-squares stand-in for
//                   the rotation it lost (identity at distance 0, ~0 for a fast
//                   frequency the head looks far along, R_{-w t0} for a head that
//                   looks t0 back).
//   kv_problem      what the low-rank methods read (kv_lowrank.h).
//   assemble_layer  the MlaLayerWeights (DeepSeek layout: d_n = d_v = d, n_r = 1):
//                   full rank (c = z, selections as up-projections) or rank r
//                   (c = A z, W_uk[h] / W_uv[h] = rows of B for group j(h)), with the
//                   query rows scaled by sqrt((d + d_r) / d) so that the MLA softmax
//                   scale 1/sqrt(d_n + d_r) gives the source's 1/sqrt(d).
#pragma once
#include <cstdint>

#include "convert/attn_stats.h"
#include "convert/kv_lowrank.h"
#include "convert/linalg.h"
#include "convert/rope_split.h"
#include "model/weights.h"

namespace mlar {

struct SplitLayer {
  RopePlan plan;
  la::Mat q;       // [n_h * (d + d_r), D+1] per head [q_nope (d) | q_pe (d_r)], unscaled
  la::Mat k_rope;  // [d_r, D+1] pair t at rope_pair_coords(layout, d_r, t)
  la::Mat z;       // [2 * n_kv * d, D+1] [k_nope of groups 0..n_kv-1 ; v of groups 0..n_kv-1]
};

struct SplitOptions {
  RopeStrategy strategy = RopeStrategy::RoRoPE;
  int64_t d_r = 0, freqfold = 1;
  // The source pair index of each rope pair, chosen for the whole model (MlaConfig
  // holds one frequency table). Partial strategies: the frequencies kept (empty =
  // choose from this layer alone); rorope derives its own (every (d/d_r)-th).
  std::vector<int64_t> kept;
  const DistanceHistogram* attention = nullptr;  // the layer's (mean_rotation)
  bool mean_rotation = false;                    // q_nope = M^T q (needs attention)
  bool complex_pca = false;                      // rope_split.h: complex PCA across kv heads
};

SplitLayer split_layer(const ModelConfig& c, const LayerWeights& src, const la::Mat& S, const SplitOptions& o);

// What plan_rope reads for this layer: E[k k^T]; with query, every E[q_h q_h^T].
RopeStats layer_rope_stats(const ModelConfig& c, const LayerWeights& src, const la::Mat& S, bool query);

// Rotation pair (a, b) = (E_p cos, E_p sin) applied to a query pair: the (re, im) of
// M^T q with M = [[a, b], [-b, a]] = E_p[R_{-w t}].
inline std::pair<double, double> mean_rotated(double re, double im, double a, double b) {
  return {a * re - b * im, b * re + a * im};
}

// key_balance multiplies the attn key metric (1 = the first-order balance above).
// attention (optional): the layer's measured value spread per head replaces the
// global estimate tr(W_o[h]^T W_o[h] Cov(v)).
KvProblem kv_problem(const ModelConfig& c, const LayerWeights& src, const SplitLayer& split, const la::Mat& S,
                     KvMethod method, double key_balance = 1.0, const DistanceHistogram* attention = nullptr);

// The MLA config of the extend layout (d_n = d_v = d, one rope head of d_r values);
// ranks, latent norm and q_lora are filled by the caller.
MlaConfig extend_mla_config(const ModelConfig& c, int64_t d_r);

// The layer's MLA weights. A ([r, Z]) and B ([Z, r]) null: full rank (r = Z).
MlaLayerWeights assemble_layer(const ModelConfig& c, const LayerWeights& src, const SplitLayer& split,
                               const la::Mat* A, const la::Mat* B);

}  // namespace mlar
