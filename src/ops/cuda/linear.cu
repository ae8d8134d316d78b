#include "ops/cuda/linear.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ops/cuda/blas_handle.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/device.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/typed_load.cuh"

namespace mlar::cuda {
namespace {

using detail::to_f32;

constexpr int kWarps = 8;
// The most weights widened at once for a cuBLAS product: 256 MiB of f32, or MLAR_CUDA_WIDEN_FLOATS (tests).
int64_t widen_floats() {
  const char* e = std::getenv("MLAR_CUDA_WIDEN_FLOATS");
  const long long v = e ? std::atoll(e) : 0;
  return v > 0 ? v : int64_t{64} << 20;
}

// Eight consecutive weights of row w at column i (i a multiple of 8, 16-byte aligned).
__device__ __forceinline__ void load8(const float* w, int64_t i, float (&v)[8]) {
  const float4 a = *reinterpret_cast<const float4*>(w + i);
  const float4 b = *reinterpret_cast<const float4*>(w + i + 4);
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
template <typename H>
__device__ __forceinline__ void load8(const H* w, int64_t i, float (&v)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(w + i);
  const H* h = reinterpret_cast<const H*>(&raw);
#pragma unroll
  for (int k = 0; k < 8; ++k) v[k] = to_f32(h[k]);
}

// One warp per output row o; lanes stride the row 8 values at a time (vec) or one at
// a time; sums for every activation row t < n in registers, then a warp reduction.
template <typename T, bool kVec>
__global__ void gemv_kernel(const float* __restrict__ x, int64_t xs, const T* __restrict__ w, int64_t ws,
                            int64_t out, int64_t in, const float* __restrict__ bias, float* __restrict__ y, int64_t ys,
                            int n) {
  const int lane = threadIdx.x & 31;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (o >= out) return;
  const T* wr = w + o * ws;
  float acc[kGemvRows];
#pragma unroll
  for (int t = 0; t < kGemvRows; ++t) acc[t] = 0.0f;
  if constexpr (kVec) {
    for (int64_t i = static_cast<int64_t>(lane) * 8; i < in; i += 256) {
      float v[8];
      load8(wr, i, v);
#pragma unroll
      for (int t = 0; t < kGemvRows; ++t) {
        if (t < n) {
          const float4 a = *reinterpret_cast<const float4*>(x + t * xs + i);
          const float4 b = *reinterpret_cast<const float4*>(x + t * xs + i + 4);
          acc[t] += v[0] * a.x + v[1] * a.y + v[2] * a.z + v[3] * a.w + v[4] * b.x + v[5] * b.y + v[6] * b.z +
                    v[7] * b.w;
        }
      }
    }
  } else {
    for (int64_t i = lane; i < in; i += 32) {
      const float v = to_f32(wr[i]);
#pragma unroll
      for (int t = 0; t < kGemvRows; ++t)
        if (t < n) acc[t] += v * x[t * xs + i];
    }
  }
#pragma unroll
  for (int t = 0; t < kGemvRows; ++t) {
    if (t < n) {
      const float s = detail::warp_sum(acc[t]);
      if (lane == 0) y[t * ys + o] = s + (bias ? bias[o] : 0.0f);
    }
  }
}

__global__ void add_bias_kernel(float* y, int64_t ys, const float* bias, int64_t out) {
  float* r = y + blockIdx.x * ys;
  for (int64_t o = threadIdx.x; o < out; o += blockDim.x) r[o] += bias[o];
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

bool gemm_uses_tf32(DType weights) {
  const char* e = std::getenv("MLAR_CUDA_GEMM");
  return weights != DType::F32 && !(e && std::strcmp(e, "exact") == 0);
}

void linear(const float* x, int64_t x_stride, ops::TypedRows w, int64_t out, int64_t in, const float* bias,
            float* y, int64_t y_stride, int64_t n) {
  if (n <= 0 || out <= 0) return;
  if (n <= kGemvRows) {
    const size_t esize = w.dtype == DType::F32 ? 4 : 2;
    const bool vec = in % 8 == 0 && x_stride % 4 == 0 && aligned16(x) && aligned16(w.data) &&
                     (static_cast<size_t>(w.stride) * esize) % 16 == 0;
    const unsigned blocks = static_cast<unsigned>((out + kWarps - 1) / kWarps);
    MLAR_CUDA_DISPATCH_FLOAT(w.dtype, "linear", {
      const T* wp = static_cast<const T*>(w.data);
      if (vec)
        gemv_kernel<T, true><<<blocks, kWarps * 32>>>(x, x_stride, wp, w.stride, out, in, bias, y, y_stride,
                                                      static_cast<int>(n));
      else
        gemv_kernel<T, false><<<blocks, kWarps * 32>>>(x, x_stride, wp, w.stride, out, in, bias, y, y_stride,
                                                       static_cast<int>(n));
    });
    check_launch("linear (gemv)");
    return;
  }
  // Column-major view: Y^T [out x n] = W [out x in] (row-major = col-major [in x out], op T) * X^T [in x n].
  // BF16/F16 weights are widened into an f32 scratch of at most widen_floats(), a block of output rows
  // at a time (an 8B model's 128256 x 4096 output head would otherwise take 2 GB).
  const float one = 1.0f, zero = 0.0f;
  const bool tf32 = gemm_uses_tf32(w.dtype);
  auto gemm = [&](const float* wf, int64_t ldw, int64_t o0, int64_t rows) {
    MLAR_CUBLAS_CHECK(cublasSgemm(detail::blas(tf32), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows),
                                  static_cast<int>(n), static_cast<int>(in), &one, wf, static_cast<int>(ldw), x,
                                  static_cast<int>(x_stride), &zero, y + o0, static_cast<int>(y_stride)));
  };
  if (w.dtype == DType::F32) {
    gemm(static_cast<const float*>(w.data), w.stride, 0, out);
  } else {
    static DeviceBuffer scratch;  // widened weights (one block of one projection at a time)
    const int64_t block = std::min(out, std::max<int64_t>(1, widen_floats() / in));
    scratch.reserve(static_cast<size_t>(block * in) * sizeof(float));
    const size_t esize = dtype_size(w.dtype);
    for (int64_t o0 = 0; o0 < out; o0 += block) {
      const int64_t rows = std::min(block, out - o0);
      const ops::TypedRows part{static_cast<const char*>(w.data) + static_cast<size_t>(o0 * w.stride) * esize, w.dtype,
                                w.stride};
      cuda::widen_rows(part, rows, in, scratch.as<float>(), in);
      gemm(scratch.as<float>(), in, o0, rows);
    }
  }
  if (bias) {
    add_bias_kernel<<<static_cast<unsigned>(n), 256>>>(y, y_stride, bias, out);
    check_launch("linear (bias)");
  }
}

}  // namespace mlar::cuda
