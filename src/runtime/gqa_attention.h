// Grouped-query attention of a Llama / Qwen2 / Qwen3 / Mistral layer (MLA.md §1):
//   q = W_q x (+b_q), k = W_k x (+b_k), v = W_v x (+b_v)   per token
//   (Qwen3, config.qk_norm: RMSNorm q_norm on each q head, k_norm on each k head)
//   RoPE on q and k in the model's layout, K/V appended to a GqaLayerCache,
//   causal softmax(q k^T / sqrt(d)) v with head h reading kv group h / g,
//   out = W_o concat_h(...).
#pragma once
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "ops/rope.h"
#include "runtime/attention.h"

namespace mlar {

class GqaAttention final : public Attention {
 public:
  // Keeps pointers to `w`'s tensors: the weights must outlive this object.
  GqaAttention(const ModelConfig& c, const LayerWeights& w, std::vector<float> inv_freq);

  std::string kind() const override { return "gqa"; }
  std::unique_ptr<LayerCache> make_cache(DType dtype) const override;
  void forward(const float* x, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws,
               float* out) const override;
  // forward's attention before the output projection: att [n, n_h * d], head h's
  // sum_t p_h(t) v_j(h)(t) (the cache rows written as forward writes them).
  void attend(const float* x, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws, float* att) const;

 private:
  int64_t D_, n_h_, n_kv_, d_;
  float eps_;
  bool qk_norm_ = false;
  ops::RopePairs pairs_;
  const LayerWeights& w_;
  std::vector<float> inv_freq_;  // [d/2]
};

}  // namespace mlar
