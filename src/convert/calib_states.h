// The residual stream of every calibration window, carried from layer to layer, so
// that sequential calibration (extend.h) runs each layer once: for layer l the
// attention inputs x = rmsnorm(h, attn_norm_l) feed layer l's statistics, layer l is
// converted, and then every window's h advances through the converted layer l
// (its MLA attention, the source's norms and MLP: runtime decoder_layer_forward),
// which is what a forward pass of the partly converted model computes for layer
// l+1's input. Windows as calib_run.h ([BOS, len-1 ids], positions 0 .. len-1).
//
// Memory: windows * len * D floats (4096 tokens at D = 4096: 64 MiB). Above
// `max_in_memory` bytes the states live in an unlinked temporary file, mapped
// (file-backed pages the kernel can write back, not anonymous memory).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "convert/calib_run.h"
#include "model/model.h"
#include "runtime/attention.h"

namespace mlar {

class CalibStates {
 public:
  static constexpr int64_t kDefaultMaxInMemory = int64_t{1} << 30;
  // h = embed[window ids] for every window of `w`.
  CalibStates(const Model& src, const CalibWindows& w, int64_t max_in_memory = kDefaultMaxInMemory);
  ~CalibStates();
  CalibStates(const CalibStates&) = delete;
  CalibStates& operator=(const CalibStates&) = delete;

  int64_t windows() const { return count_; }
  int64_t len() const { return len_; }
  int64_t bytes() const { return count_ * len_ * dim_ * static_cast<int64_t>(sizeof(float)); }
  bool file_backed() const { return mapped_ != nullptr; }

  // For every window i: x = rmsnorm(h_i, attn_norm) [len, D] -> f(i, x, len).
  void attention_inputs(const ModelConfig& c, const LayerWeights& L,
                        const std::function<void(int64_t, const float*, int64_t)>& f) const;
  // Every window through one decoder layer (L's norms and MLP, attention `attn`).
  // progress(done, total) after each window (may be empty).
  void advance(const ModelConfig& c, const LayerWeights& L, const Attention& attn,
               const std::function<void(int64_t, int64_t)>& progress = {});

 private:
  float* window(int64_t i) { return data_ + i * len_ * dim_; }
  const float* window(int64_t i) const { return data_ + i * len_ * dim_; }

  int64_t count_ = 0, len_ = 0, dim_ = 0;
  std::unique_ptr<float[]> owned_;  // [count, len, D] when in memory
  void* mapped_ = nullptr;          // the same, mapped from a temporary file
  float* data_ = nullptr;
};

}  // namespace mlar
