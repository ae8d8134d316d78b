#include "runtime/cuda/cuda_carried_states.h"

#include <algorithm>
#include <vector>

#include "ops/cuda/device.h"
#include "ops/cuda/device_tensor.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/moment.h"
#include "ops/linear.h"
#include "runtime/cuda/cuda_layer.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {

using cuda::DeviceBuffer;

namespace {

// Rows of x per second-moment chunk (the double scratch is rows * (D+1) * 8 bytes).
constexpr int64_t kMomentRows = 4096;

}  // namespace

struct CudaCarriedStates::State {
  DeviceBuffer h;      // [windows * len, D] residual streams, window after window
  DeviceBuffer pos;    // [len] int64 positions 0 .. len-1
  mutable DeviceBuffer x;      // [rows, D] attention inputs
  mutable DeviceBuffer chunk;  // [kMomentRows, D+1] doubles
  mutable DeviceBuffer S;      // [(D+1), (D+1)] doubles
  CudaLayerScratch scratch;
};

CudaCarriedStates::CudaCarriedStates(const Model& src, const TokenWindows& windows)
    : count_(static_cast<int64_t>(windows.size())),
      len_(windows.empty() ? 0 : static_cast<int64_t>(windows.front().size())),
      dim_(src.config.hidden_size),
      s_(std::make_unique<State>()) {
  cuda::require_device("calibration on cuda");
  check_token_windows(src.config, windows, "calibration");
  State& s = *s_;
  s.h = DeviceBuffer(static_cast<size_t>(bytes()));
  std::vector<float> host(static_cast<size_t>(len_ * dim_));  // [len, D]
  for (int64_t i = 0; i < count_; ++i) {
    ops::embed_rows(src.weights.embed, windows[static_cast<size_t>(i)].data(), host.data(), len_);
    cuda::upload(s.h.as<float>() + i * len_ * dim_, host.data(), host.size() * sizeof(float));
  }
  std::vector<int64_t> pos(static_cast<size_t>(len_));
  for (int64_t t = 0; t < len_; ++t) pos[static_cast<size_t>(t)] = t;
  s.pos = DeviceBuffer(pos.size() * sizeof(int64_t));
  cuda::upload(s.pos.data(), pos.data(), pos.size() * sizeof(int64_t));
}

CudaCarriedStates::~CudaCarriedStates() = default;

void CudaCarriedStates::attention_inputs(const ModelConfig& c, const LayerWeights& L, const InputFn& f,
                                         int64_t max_windows) const {
  const State& s = *s_;
  const cuda::DeviceTensor norm = cuda::to_device(L.attn_norm, DType::F32);
  const int64_t n = max_windows > 0 ? std::min(max_windows, count_) : count_;
  s.x.reserve(static_cast<size_t>(len_ * dim_) * sizeof(float));
  std::vector<float> host(static_cast<size_t>(len_ * dim_));  // [len, D]
  for (int64_t i = 0; i < n; ++i) {
    cuda::rmsnorm(s.h.as<float>() + i * len_ * dim_, dim_, norm.f32(), s.x.as<float>(), dim_, len_, dim_,
                  static_cast<float>(c.rms_norm_eps));
    cuda::download(host.data(), s.x.data(), host.size() * sizeof(float));
    f(i, host.data(), len_);
  }
}

std::vector<double> CudaCarriedStates::moment_sum(const ModelConfig& c, const LayerWeights& L) const {
  const State& s = *s_;
  const cuda::DeviceTensor norm = cuda::to_device(L.attn_norm, DType::F32);
  const int64_t w = dim_ + 1, rows = count_ * len_;
  s.x.reserve(static_cast<size_t>(std::min(rows, kMomentRows) * dim_) * sizeof(float));
  s.chunk.reserve(static_cast<size_t>(std::min(rows, kMomentRows) * w) * sizeof(double));
  s.S.reserve(static_cast<size_t>(w * w) * sizeof(double));
  cuda::fill_zero(s.S.data(), static_cast<size_t>(w * w) * sizeof(double));
  for (int64_t r0 = 0; r0 < rows; r0 += kMomentRows) {
    const int64_t n = std::min(kMomentRows, rows - r0);
    cuda::rmsnorm(s.h.as<float>() + r0 * dim_, dim_, norm.f32(), s.x.as<float>(), dim_, n, dim_,
                  static_cast<float>(c.rms_norm_eps));
    cuda::add_moment(s.x.as<float>(), dim_, n, dim_, s.S.as<double>(), s.chunk.as<double>());
  }
  std::vector<double> out(static_cast<size_t>(w * w));
  cuda::download(out.data(), s.S.data(), out.size() * sizeof(double));
  return out;
}

void CudaCarriedStates::advance(const ModelConfig& c, int64_t layer, const LayerWeights& L,
                                const MlaLayerWeights* mla) {
  if (c.mla && !mla) fail("carried states: layer {}: an MLA config without MLA weights", layer);
  State& s = *s_;
  const CudaLayer dev(c, layer, L, mla);
  const std::vector<float> inv = rope_inv_freq(c);
  DeviceBuffer inv_freq(std::max<size_t>(inv.size(), 1) * sizeof(float));
  if (!inv.empty()) cuda::upload(inv_freq.data(), inv.data(), inv.size() * sizeof(float));
  const size_t cache_bytes = static_cast<size_t>(len_ * dev.cache_cols(c)) * sizeof(float);
  DeviceBuffer k(cache_bytes), v(dev.is_mla() ? 0 : cache_bytes);  // one window's F32 rows
  const CudaLayerCache cache{k.data(), v.data(), DType::F32};
  const ops::RopePairs pairs = rope_pairs(c.rope_layout);
  for (int64_t i = 0; i < count_; ++i) {
    dev.forward(c, s.h.as<float>() + i * len_ * dim_, len_, 0, s.pos.as<int64_t>(), inv_freq.as<float>(), pairs, cache,
                s.scratch);
  }
  cuda::synchronize();
}

}  // namespace mlar
