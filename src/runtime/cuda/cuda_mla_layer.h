// One MLA layer on the device (MLA.md §2; runtime/mla_attention.h is the CPU
// original, whose layouts this follows): the latent cache rows [c | k_pe] written in
// the cache dtype, then the absorbed evaluation (queries in latent space over the
// cache rows, ops/cuda/attention.h: the tensor-core kernel for BF16 rows that fit it).
// Runs the DeepSeek layout (q or q_lora, latent norm, NoPE part, biases), the exact
// `repeat` retrofit (W_qr, n_r rope heads, Qwen3 q/k norms) and stored absorption;
// the per-head score scales of the Qwen3 `cached` key-norm form stay on the CPU.
#pragma once
#include <cstdint>

#include "model/config.h"
#include "model/weights.h"
#include "ops/cuda/device_tensor.h"
#include "runtime/cuda/device_workspace.h"
#include "runtime/mla_layer_dims.h"

namespace mlar {

class CudaMlaLayer : private MlaLayerDims {
 public:
  // Uploads layer `layer`'s weights (projections in their dtype; per-head
  // up-projections, norms and biases in f32). Throws mlar::Error for score scales.
  CudaMlaLayer(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w);

  int64_t cache_cols() const { return r_ + R_; }  // values per cached token
  bool stored_absorbed() const { return absorbed_; }
  size_t weight_bytes() const;
  // x: [n, D] normalised hidden states at positions dpos[0..n) (device, int64) =
  // pos0 .. pos0+n-1; writes cache rows pos0.. of `cache` ([max_tokens, r + R] of
  // `dtype`) and out: [n, D].
  void forward(const float* x, int64_t n, int64_t pos0, const int64_t* dpos, void* cache, DType dtype,
               DeviceWorkspace& ws, float* out) const;

 private:
  void rope_queries(const float* q, int64_t n, const int64_t* dpos, float* dst, int64_t dst_stride,
                    int64_t dst_head) const;
  cuda::DeviceTensor wq_, bq_, wq_a_, q_a_norm_, wq_b_, q_norm_, k_norm_;
  cuda::DeviceTensor w_dkv_, b_dkv_, kv_norm_, w_kr_, b_kr_, wo_;
  cuda::DeviceTensor wqr_, wuk_, wuv_;  // f32 per-head matrices
  cuda::DeviceTensor d_inv_freq_;  // [d_r / 2] f32 (MlaLayerDims::inv_freq_ on the device)
  bool nope_ = true;  // the NoPE part scores (keys [c | k_pe]); else keys are k_pe alone
};

}  // namespace mlar
