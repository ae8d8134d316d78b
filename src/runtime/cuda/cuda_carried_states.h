// runtime/carried_states.h on a GPU: the residual stream of every window in device
// memory ([windows * len, D] f32), each layer run by runtime/cuda/cuda_layer.h over one
// window at a time (F32 cache rows), the attention inputs' second moment summed on the
// device in double (ops/cuda/moment.h). Only attention_inputs copies states to the host.
#pragma once
#include <memory>

#include "runtime/carried_states.h"

namespace mlar {

class CudaCarriedStates final : public CarriedStates {
 public:
  // h = embed[window ids] (embedded on the host, then uploaded). Throws mlar::Error without a GPU.
  CudaCarriedStates(const Model& src, const TokenWindows& windows);
  ~CudaCarriedStates() override;

  int64_t windows() const override { return count_; }
  int64_t len() const override { return len_; }
  int64_t dim() const override { return dim_; }
  std::string device() const override { return "cuda"; }
  void attention_inputs(const ModelConfig& c, const LayerWeights& L, const InputFn& f,
                        int64_t max_windows = 0) const override;
  std::vector<double> moment_sum(const ModelConfig& c, const LayerWeights& L) const override;
  void advance(const ModelConfig& c, int64_t layer, const LayerWeights& L, const MlaLayerWeights* mla) override;

 private:
  struct State;
  int64_t count_ = 0, len_ = 0, dim_ = 0;
  std::unique_ptr<State> s_;
};

}  // namespace mlar
