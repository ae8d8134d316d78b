// Where the source attention of one layer looks, by distance: for every query head h,
//   mass[h][t] = sum over queries m of p_h(m, m - t)   (t = 0 .. window-1)
// accumulated over calibration windows (each observed from position 0) by running
// the layer's own GQA scores (RoPE, causal softmax) on the captured attention input.
// Its use: the attention-weighted mean rotation a key part sees at frequency w,
//   E_p[R_{-w t}] = [[E cos(w t), E sin(w t)], [-E sin(w t), E cos(w t)]],
// the best fixed stand-in for RoPE on a part that is moved to NoPE (extend_layer.h).
// It also measures, per head, how much the output moves per unit of score change:
//   spread[h] = E_m sum_n p_h(m,n) |W_o[h] (v_n - vbar_m)|^2,  vbar_m = sum_n p_h(m,n) v_n
// (first order, d out_h = sum_n p_n ds_n W_o[h] (v_n - vbar)), the exchange rate between
// key errors (through scores) and value errors in the attn latent metric (kv_lowrank.h).
// Memory: n_h x window doubles, and n_h x d x d for the W_o Gram matrices (computed
// once per layer, not per window).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace mlar {

class DistanceHistogram {
 public:
  DistanceHistogram() = default;
  DistanceHistogram(const ModelConfig& c, int64_t window);
  // Adds one window: x [n, D], the attention input at positions 0 .. n-1 (n <= window),
  // scored with the source layer `w`.
  void add(const ModelConfig& c, const LayerWeights& w, const float* x, int64_t n);

  bool empty() const { return queries_ == 0; }
  int64_t heads() const { return heads_; }
  // spread[h] above (0 when empty).
  double value_spread(int64_t h) const { return queries_ ? spread_[static_cast<size_t>(h)] / static_cast<double>(queries_) : 0.0; }
  // (E_p cos(w t), E_p sin(w t)) of head h.
  std::pair<double, double> mean_rotation(int64_t h, double inv_freq) const;

 private:
  int64_t heads_ = 0, window_ = 0, queries_ = 0;
  std::vector<double> mass_;    // [heads, window]
  std::vector<double> spread_;  // [heads], summed over queries
  // G_h = W_o[h]^T W_o[h] of every head ([heads, d, d], upper triangles), computed on
  // the first add and reused while W_o is the same tensor.
  std::vector<double> gram_;
  const void* gram_of_ = nullptr;
};

}  // namespace mlar
