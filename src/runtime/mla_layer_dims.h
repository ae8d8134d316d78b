// The sizes of one MLA layer (MLA.md §2) as attention code reads them: taken once
// from the config, checked against the layer's weights, and shared by the runtime
// attention (MlaAttention) and the training block (train::MlaBlock), which derive
// from it.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "ops/attention.h"
#include "ops/head_matmul.h"
#include "ops/rope.h"

namespace mlar {

class MlaLayerDims {
 protected:
  // Checks the weight shapes (check_mla_layer_shapes) and the sizes; errors start
  // with "<who>: layer <layer>".
  MlaLayerDims(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w, const char* who);

  // The per-head products of the absorbed evaluation over n tokens, q being the
  // projected queries [n, H * qw] (runtime/mla_attention.cpp and its CUDA twin):
  // q_pe_h = W_qr[h] q_rope_in_h into dst rows of dst_stride, heads dst_head apart;
  ops::HeadMatmulDims qr_dims(int64_t n, int64_t dst_stride, int64_t dst_head) const;
  // qt_h = W_uk[h]^T q_nope_h into [n, H, dq] (dq = r + R);
  ops::HeadMatmulDims uk_absorb_dims(int64_t n, int64_t dq) const;
  // v_h = W_uv[h] o_h, o: [n, H, r] -> [n, H * d_v].
  ops::HeadMatmulDims uv_dims(int64_t n) const;
  // The absorbed attention of n queries after pos0 cached tokens over the cache rows:
  // H heads of width dq against one shared row set (keys dq wide, values the r latent
  // values), cache row strides r + R (+ key scales); the caller sets strides it needs.
  ops::AttentionDims absorbed_attention_dims(int64_t n, int64_t pos0, int64_t dq) const;

  int64_t D_, H_;
  int64_t r_;             // latent rank of this layer
  int64_t dn_, dr_, nr_;  // d_n, d_r, n_r
  int64_t R_;             // n_r * d_r
  int64_t dv_;            // d_v
  int64_t qn_, qin_;      // per-head query widths as projected: NoPE part, rope input
  int64_t qw_;            // qn_ + qin_
  int64_t q_lora_;
  bool has_qr_, absorbed_, latent_norm_;
  bool qk_norm_;  // q_norm on each head's rope-query input, k_norm on each rope head
  // Per-head RMSNorms as score scales (MlaConfig::qk_scale_dim): the probes' head
  // size (0 = none) and the key scales cached per token after [c | k_pe].
  int64_t qs_dim_ = 0, n_ks_ = 0;
  float scale_, eps_;
  ops::RopePairs pairs_;
  std::vector<float> inv_freq_;  // [d_r / 2]: the config's explicit table, else from rope_theta
};

}  // namespace mlar
