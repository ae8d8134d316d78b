// The residual stream h of many windows of tokens, carried through a model one decoder
// layer at a time. The sequential calibration of convert/extend.h reads each layer's
// attention inputs x = rmsnorm(h, attn_norm) for its statistics, converts the layer,
// then advances every window through the converted layer: what a forward pass of the
// partly converted model computes for the next layer's input. Each window is its own
// sequence at positions 0 .. len-1 (exact F32 caches).
//
// CpuCarriedStates (here) keeps them in host memory; CudaCarriedStates (runtime/cuda)
// in device memory, where the second moment of the inputs is summed too;
// backend/open_carried_states picks one by device.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace mlar {

class CarriedStates {
 public:
  using InputFn = std::function<void(int64_t window, const float* x, int64_t n)>;  // x: [n, D] on the host
  virtual ~CarriedStates() = default;

  virtual int64_t windows() const = 0;
  virtual int64_t len() const = 0;
  virtual int64_t dim() const = 0;
  int64_t bytes() const { return windows() * len() * dim() * static_cast<int64_t>(sizeof(float)); }
  virtual bool file_backed() const { return false; }
  virtual std::string device() const = 0;  // "cpu", "cuda"

  // For windows i < max_windows (0: every window): x = rmsnorm(h_i, L.attn_norm) [len, D] -> f(i, x, len).
  virtual void attention_inputs(const ModelConfig& c, const LayerWeights& L, const InputFn& f,
                                int64_t max_windows = 0) const = 0;
  // sum over every window's rows of [x; 1][x; 1]^T, x = rmsnorm(h, L.attn_norm): the upper triangle (i <= j)
  // of a row-major [(D+1), (D+1)] matrix (the rest unset). Empty where the device does not sum it (the CPU):
  // the caller then sums attention_inputs.
  virtual std::vector<double> moment_sum(const ModelConfig& c, const LayerWeights& L) const;
  // Every window through decoder layer `layer`: L's norms and MLP; attention the MLA layer `mla` of config
  // c (c.mla set) or, with mla null, L's own GQA attention (config c).
  virtual void advance(const ModelConfig& c, int64_t layer, const LayerWeights& L, const MlaLayerWeights* mla) = 0;
};

// Windows of token ids, each [BOS, ...] of the same length.
using TokenWindows = std::vector<std::vector<int32_t>>;

// In host memory: above `max_in_memory` bytes the states live in an unlinked temporary
// file, mapped (file-backed pages the kernel can write back, not anonymous memory).
// windows * len * D floats (4096 tokens at D = 4096: 64 MiB).
class CpuCarriedStates final : public CarriedStates {
 public:
  static constexpr int64_t kDefaultMaxInMemory = int64_t{1} << 30;
  // h = embed[window ids] for every window.
  CpuCarriedStates(const Model& src, const TokenWindows& windows, int64_t max_in_memory = kDefaultMaxInMemory);
  ~CpuCarriedStates() override;
  CpuCarriedStates(const CpuCarriedStates&) = delete;
  CpuCarriedStates& operator=(const CpuCarriedStates&) = delete;

  int64_t windows() const override { return count_; }
  int64_t len() const override { return len_; }
  int64_t dim() const override { return dim_; }
  bool file_backed() const override { return mapped_ != nullptr; }
  std::string device() const override { return "cpu"; }
  void attention_inputs(const ModelConfig& c, const LayerWeights& L, const InputFn& f,
                        int64_t max_windows = 0) const override;
  void advance(const ModelConfig& c, int64_t layer, const LayerWeights& L, const MlaLayerWeights* mla) override;

 private:
  float* window(int64_t i) { return data_ + i * len_ * dim_; }
  const float* window(int64_t i) const { return data_ + i * len_ * dim_; }

  int64_t count_ = 0, len_ = 0, dim_ = 0;
  std::unique_ptr<float[]> owned_;  // [count, len, D] when in memory
  void* mapped_ = nullptr;          // the same, mapped from a temporary file
  float* data_ = nullptr;
};

// Throws "<what>: ..." unless there is at least one window, all of one length >= 2, with ids inside the vocabulary.
void check_token_windows(const ModelConfig& c, const TokenWindows& windows, const std::string& what);

}  // namespace mlar
