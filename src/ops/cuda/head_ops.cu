#include "ops/cuda/head_ops.h"

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/device.h"
#include "ops/cuda/typed_load.cuh"

namespace mlar::cuda {
namespace {

constexpr int kThreads = 128;

// grid: x = row t, y = head h. The block stages x_h(t) in shared memory; each thread
// computes outputs o, o + kThreads, ... For [out, in] matrices (w_in_out false) a warp
// reads one weight row per output (lanes over `in`); for [in, out] ones the threads
// read consecutive outputs of each weight row (coalesced).
__global__ void matmul_heads_kernel(const float* x, const float* w, float* y, ops::HeadMatmulDims d) {
  extern __shared__ float xs[];  // [in]
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const float* xr = x + t * d.x_stride + h * d.x_head_stride;
  const float* wh = w + h * d.w_head_stride;
  float* yr = y + t * d.y_stride + h * d.y_head_stride;
  for (int64_t i = threadIdx.x; i < d.in; i += kThreads) xs[i] = xr[i];
  __syncthreads();
  if (d.w_in_out) {
    for (int64_t o = threadIdx.x; o < d.out; o += kThreads) {
      float acc = 0.0f;
      for (int64_t i = 0; i < d.in; ++i) acc = fmaf(wh[i * d.out + o], xs[i], acc);
      yr[o] = acc;
    }
  } else {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int64_t o = warp; o < d.out; o += kThreads / 32) {
      const float* wr = wh + o * d.in;
      float acc = 0.0f;
      for (int64_t i = lane; i < d.in; i += 32) acc = fmaf(wr[i], xs[i], acc);
      acc = detail::warp_sum(acc);
      if (lane == 0) yr[o] = acc;
    }
  }
}

__global__ void copy_heads_kernel(const float* src, int64_t ss, int64_t shs, float* dst, int64_t ds, int64_t dhs,
                                  int64_t width) {
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const float* s = src + t * ss + h * shs;
  float* o = dst + t * ds + h * dhs;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) o[i] = s[i];
}

}  // namespace

void matmul_heads(const float* x, const float* w, float* y, const ops::HeadMatmulDims& d) {
  if (d.n <= 0 || d.heads <= 0 || d.out <= 0) return;
  const size_t smem = static_cast<size_t>(d.in) * sizeof(float);
  if (smem > 48 * 1024) MLAR_CUDA_CHECK(cudaFuncSetAttribute(matmul_heads_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  matmul_heads_kernel<<<dim3(static_cast<unsigned>(d.n), static_cast<unsigned>(d.heads)), kThreads, smem>>>(x, w, y, d);
  check_launch("matmul_heads");
}

void copy_heads(const float* src, int64_t src_stride, int64_t src_head_stride, float* dst, int64_t dst_stride,
                int64_t dst_head_stride, int64_t n, int64_t heads, int64_t width) {
  if (n <= 0 || heads <= 0 || width <= 0) return;
  copy_heads_kernel<<<dim3(static_cast<unsigned>(n), static_cast<unsigned>(heads)), 64>>>(
      src, src_stride, src_head_stride, dst, dst_stride, dst_head_stride, width);
  check_launch("copy_heads");
}

}  // namespace mlar::cuda
