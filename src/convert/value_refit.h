// Value refit (`--value-refit`, on by default in sequential calibration): after a
// layer's latent is fixed, each head's value up-projection W_uv[h] is refit to what
// attention averages.
//
// The low-rank fit (kv_lowrank.h) makes W_uv[h] c_t the best value of every token t
// alike. A head's output is an average, o_h = sum_t p_h(t) c_t, dominated by the
// tokens it attends to (the first token, an attention sink, often holds most of the
// weight) and computed with the converted keys' probabilities. The refit is the
// least-squares fit of the source head's output a_h = sum_t p_h(t) v_j(h)(t) on the
// converted head's latent average, over the layer's calibration inputs:
//
//   W_uv[h] = E[a_h o_h^T] (E[o_h o_h^T] + lambda I)^-1,   lambda = ridge * tr(E[o_h o_h^T]) / r
//
// Both sides see the same input x (the carried residual stream of the sequential
// calibration), so the fit corrects this layer's own error. W_o is kept: with
// W_o[h] of full column rank the fit is also the one of the output W_o[h] a_h.
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"
#include "runtime/carried_states.h"

namespace mlar {

struct ValueRefitResult {
  // Per head: E|W_uv[h] o_h - a_h|^2 / E|a_h|^2 with the weights before and after.
  std::vector<double> before, after;
  int64_t tokens = 0;  // query positions the fit read
  double mean_before() const;
  double mean_after() const;
};

// Refits w.w_uv and w.wo (layer `layer` of config cfg, cfg.mla set, rank <= d_v; not
// stored-absorbed) from `max_windows` windows of `states` spread evenly over them
// (every (windows / max_windows)-th; 0: all), blocks of
// `block_heads` heads at a time (dividing n_h); the source layer's GQA attention gives
// the targets.
ValueRefitResult refit_outputs(const CarriedStates& states, const Model& src, int64_t layer, const ModelConfig& cfg,
                               MlaLayerWeights& w, int64_t max_windows, int64_t block_heads, double step = 1.0,
                               double ridge = 1e-6);

}  // namespace mlar
