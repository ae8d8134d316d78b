// Value refit (`--value-refit-tokens`, `--value-refit-step`; on by default in sequential
// calibration): after a layer's latent is fixed, the value and output projections are
// refit to what attention averages (docs/compression.md, section 6).
//
// The low-rank fit (kv_lowrank.h) makes W_uv[h] c_t the best value of every token t
// alike. A head's output is an average, o_h = sum_t p_h(t) c_t, dominated by the
// tokens it attends to and computed with the converted keys' probabilities. For a block
// of heads b, with y_b = sum_{h in b} W_o[h] a_h the block's share of the source output
// (a_h = sum_t p_h(t) v_j(h)(t), the source head's attention output), the refit is the
// least-squares fit on the layer's calibration inputs
//
//   M_b = E[y_b o_b^T] (E[o_b o_b^T] + lambda I)^-1,   lambda = ridge * tr(E[o_b o_b^T]) / F
//
// (o_b the block's latent averages side by side, F of them); each head's product
// W_o[h] W_uv[h] moves a step toward its part M_h and is factored back (SVD; cut to d_v
// directions when r > d_v). Both sides see the same input x (the carried residual
// stream), so the fit corrects this layer's own error. W_o becomes the layer's own.
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"
#include "runtime/carried_states.h"

namespace mlar {

struct ValueRefitResult {
  // Per block: E|sum_h W_o[h] W_uv[h] o_h - y_b|^2 / E|y_b|^2 with the weights before and after
  // (after: the weights kept, which are the old ones where the fit would not lower it).
  std::vector<double> before, after;
  int64_t tokens = 0;  // query positions the fit read
  double mean_before() const;
  double mean_after() const;
};

// Refits w.w_uv and w.wo (layer `layer` of config cfg, cfg.mla set; not stored-absorbed) from `max_windows` windows of `states` spread evenly over them
// (every (windows / max_windows)-th; 0: all), blocks of
// `block_heads` heads at a time (dividing n_h); the source layer's GQA attention gives
// the targets.
ValueRefitResult refit_outputs(const CarriedStates& states, const Model& src, int64_t layer, const ModelConfig& cfg,
                               MlaLayerWeights& w, int64_t max_windows, int64_t block_heads, double step = 1.0,
                               double ridge = 1e-6);

}  // namespace mlar
