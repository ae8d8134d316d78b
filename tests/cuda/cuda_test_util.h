// Helpers of the CUDA op tests: seeded random host data, typed storage (F32 | BF16 |
// F16 bytes and the f32 values they hold), device copies, and error measures. Every
// test compares a CUDA op with the CPU op of ops/ on the same inputs.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "ops/cuda/device.h"
#include "ops/kv_attention.h"
#include "tensor/dtype.h"
#include "util/half.h"

namespace mlar::cudatest {

inline std::vector<float> random_vec(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

// Values stored as `t`: bytes (for upload) and their f32 values (the CPU's view).
struct Stored {
  DType dtype = DType::F32;
  std::vector<uint16_t> half;
  std::vector<float> f32;
  const void* bytes() const { return dtype == DType::F32 ? static_cast<const void*>(f32.data()) : half.data(); }
  size_t nbytes() const { return f32.size() * dtype_size(dtype); }
  ops::TypedRows host_rows(int64_t stride) const { return {bytes(), dtype, stride}; }
};

inline Stored store(const std::vector<float>& x, DType t) {
  Stored s;
  s.dtype = t;
  s.f32 = x;
  if (t != DType::F32) {
    s.half.resize(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      s.half[i] = t == DType::BF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
      s.f32[i] = t == DType::BF16 ? bf16_to_f32(s.half[i]) : f16_to_f32(s.half[i]);
    }
  }
  return s;
}

// A device copy of host bytes.
struct Dev {
  cuda::DeviceBuffer buf;
  Dev() = default;
  Dev(const void* src, size_t bytes) : buf(std::max<size_t>(bytes, 16)) { cuda::upload(buf.data(), src, bytes); }
  template <typename T>
  explicit Dev(const std::vector<T>& v) : Dev(v.data(), v.size() * sizeof(T)) {}
  static Dev zeros(size_t bytes) {
    Dev d;
    d.buf = cuda::DeviceBuffer(std::max<size_t>(bytes, 16));
    cuda::fill_zero(d.buf.data(), bytes);
    return d;
  }
  template <typename T>
  T* ptr() const { return buf.as<T>(); }
};

template <typename T>
std::vector<T> fetch(const Dev& d, size_t n) {
  std::vector<T> v(n);
  cuda::synchronize();
  cuda::download(v.data(), d.buf.data(), n * sizeof(T));
  return v;
}

// One decode query of MLA's absorbed form (one shared kv head: keys [c | k_pe] of dk, values c of dv)
// over q_start cached rows.
inline ops::AttentionDims mla_decode_dims(int64_t n_heads, int64_t dk, int64_t dv, int64_t q_start) {
  ops::AttentionDims d;
  d.n_q = 1;
  d.n_heads = n_heads;
  d.n_kv_heads = 1;
  d.dk = dk;
  d.dv = dv;
  d.q_start = q_start;
  return d;
}

inline double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float x : a) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}
inline double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  return m;
}

// Every test needs the device: without one it fails (never skips), naming why.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_THROW(cuda::require_device("test_cuda")); }
};

}  // namespace mlar::cudatest
