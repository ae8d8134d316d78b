// One decoder layer on the device, runtime/decoder.h's decoder_layer_forward: its
// weights uploaded once (projections in their file dtype; norms and biases f32) and
// its forward pass over a residual stream in device memory. CudaSession runs one per
// layer of a model; the carried calibration states (cuda_carried_states.h) one layer
// at a time over many windows.
#pragma once
#include <cstdint>
#include <memory>

#include "model/config.h"
#include "model/weights.h"
#include "ops/cuda/device_tensor.h"
#include "ops/rope.h"  // RopePairs
#include "runtime/cuda/cuda_mla_layer.h"
#include "runtime/cuda/device_workspace.h"

namespace mlar {

// The forward pass's scratch, grown to the largest call: x, a [n, D]; q, att [n, n_h d];
// k, v [n, n_kv d]; gate, up [n, F]; the MLA layers' own slots.
struct CudaLayerScratch {
  cuda::DeviceBuffer x, a, q, att, k, v, gate, up;
  DeviceWorkspace mla;
  int64_t capacity = 0;
  void reserve(const ModelConfig& c, int64_t n);
};

// Where a layer's cache rows are: GQA K and V rows [max_tokens, n_kv d]; MLA rows
// [max_tokens, r + R] in k (v unused); values of `dtype`.
struct CudaLayerCache {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::F32;
};

class CudaLayer {
 public:
  // Layer `layer` of a model with config c: MLA when c.mla is set (the weights `mla`
  // when given, else L.mla), else L's GQA attention. L's norms and MLP either way.
  CudaLayer(const ModelConfig& c, int64_t layer, const LayerWeights& L, const MlaLayerWeights* mla = nullptr);

  bool is_mla() const { return mla_ != nullptr; }
  bool stored_absorbed() const { return mla_ && mla_->stored_absorbed(); }
  // Values per cached token in k (and, for GQA, in v as well).
  int64_t cache_cols(const ModelConfig& c) const { return mla_ ? mla_->cache_cols() : c.num_kv_heads * c.head_dim; }
  size_t weight_bytes() const;

  // h [n, D] (device) at positions pos0 .. pos0+n-1 (dpos: the same, device int64 [n]):
  // h += attention(rmsnorm(h, attn_norm)) with the new rows written to `cache` at pos0;
  // h += MLP(rmsnorm(h, ffn_norm)). inv_freq: the GQA rope frequencies [d/2] (device f32).
  void forward(const ModelConfig& c, float* h, int64_t n, int64_t pos0, const int64_t* dpos, const float* inv_freq,
               ops::RopePairs pairs, const CudaLayerCache& cache, CudaLayerScratch& s) const;
  // x = rmsnorm(h, attn_norm) for n rows (row strides in floats): the attention's input.
  void attention_input(const ModelConfig& c, const float* h, int64_t h_stride, float* x, int64_t x_stride,
                       int64_t n) const;

 private:
  cuda::DeviceTensor attn_norm_, ffn_norm_, q_norm_, k_norm_;  // F32
  cuda::DeviceTensor wq_, wk_, wv_, wo_;                       // file dtype, [out, in]
  cuda::DeviceTensor bq_, bk_, bv_;                            // F32 or empty
  cuda::DeviceTensor w_gate_, w_up_, w_down_;
  std::unique_ptr<CudaMlaLayer> mla_;  // MLA layers (then wq_..bv_ are empty)
};

}  // namespace mlar
