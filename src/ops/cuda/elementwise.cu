#include "ops/cuda/elementwise.h"

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/device.h"
#include "ops/cuda/typed_load.cuh"

namespace mlar::cuda {
namespace {

using detail::from_f32;
using detail::to_f32;

constexpr int kRowThreads = 256;

__global__ void rmsnorm_kernel(const float* x, int64_t xs, const float* w, float* y, int64_t ys, int64_t dim,
                               float eps) {
  const float* xr = x + blockIdx.x * xs;
  float* yr = y + blockIdx.x * ys;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += static_cast<double>(xr[i]) * xr[i];
  __shared__ double part[kRowThreads / 32];
  ss = detail::warp_sum(ss);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    double v = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.0;
    v = detail::warp_sum(v);
    if (threadIdx.x == 0) part[0] = v;
  }
  __syncthreads();
  const float inv = static_cast<float>(1.0 / sqrt(part[0] / static_cast<double>(dim) + eps));
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * inv * w[i];
}

__global__ void rope_kernel(float* x, int64_t n, int64_t heads, int64_t half, int64_t hs, int64_t ts,
                            const int64_t* pos, const float* inv_freq, bool interleaved) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * heads * half) return;
  const int64_t i = idx % half;
  const int64_t h = (idx / half) % heads;
  const int64_t t = idx / (half * heads);
  float* p = x + t * ts + h * hs;
  const double angle = static_cast<double>(pos[t]) * static_cast<double>(inv_freq[i]);
  double s, c;
  sincos(angle, &s, &c);
  const int64_t a = interleaved ? 2 * i : i;
  const int64_t b = interleaved ? 2 * i + 1 : i + half;
  const double x0 = p[a], x1 = p[b];
  p[a] = static_cast<float>(x0 * c - x1 * s);
  p[b] = static_cast<float>(x0 * s + x1 * c);
}

__global__ void swiglu_kernel(const float* g, const float* u, float* o, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) {
    const float z = g[i];
    o[i] = z / (1.0f + expf(-z)) * u[i];
  }
}

__global__ void add_kernel(const float* a, const float* b, float* o, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) o[i] = a[i] + b[i];
}

template <typename T>
__global__ void embed_kernel(const T* table, int64_t stride, const int32_t* ids, float* out, int64_t dim) {
  const T* row = table + static_cast<int64_t>(ids[blockIdx.x]) * stride;
  float* o = out + blockIdx.x * dim;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) o[c] = to_f32(row[c]);
}

template <typename T>
__global__ void round_kernel(const float* src, int64_t ss, int64_t cols, T* dst, int64_t ds) {
  const float* s = src + blockIdx.x * ss;
  T* d = dst + blockIdx.x * ds;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) d[c] = from_f32<T>(s[c]);
}

template <typename T>
__global__ void widen_kernel(const T* src, int64_t ss, int64_t cols, float* dst, int64_t ds) {
  const T* s = src + blockIdx.x * ss;
  float* d = dst + blockIdx.x * ds;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) d[c] = to_f32(s[c]);
}

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

void rmsnorm(const float* x, int64_t x_stride, const float* weight, float* y, int64_t y_stride, int64_t n,
             int64_t dim, float eps) {
  if (n <= 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(n), kRowThreads>>>(x, x_stride, weight, y, y_stride, dim, eps);
  check_launch("rmsnorm");
}

void rope(float* x, int64_t n, int64_t heads, int64_t d, int64_t head_stride, int64_t token_stride,
          const int64_t* positions, const float* inv_freq, ops::RopePairs pairs) {
  const int64_t total = n * heads * (d / 2);
  if (total <= 0) return;
  rope_kernel<<<blocks_for(total, 256), 256>>>(x, n, heads, d / 2, head_stride, token_stride, positions, inv_freq,
                                               pairs == ops::RopePairs::Interleaved);
  check_launch("rope");
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  if (n <= 0) return;
  swiglu_kernel<<<blocks_for(n, 256), 256>>>(gate, up, out, n);
  check_launch("swiglu");
}

void add(const float* a, const float* b, float* out, int64_t n) {
  if (n <= 0) return;
  add_kernel<<<blocks_for(n, 256), 256>>>(a, b, out, n);
  check_launch("add");
}

void embed_rows(ops::TypedRows table, const int32_t* ids, float* out, int64_t n, int64_t dim) {
  if (n <= 0) return;
  MLAR_CUDA_DISPATCH_FLOAT(table.dtype, "embed_rows",
                           embed_kernel<T><<<static_cast<unsigned>(n), 256>>>(static_cast<const T*>(table.data),
                                                                               table.stride, ids, out, dim));
  check_launch("embed_rows");
}

void round_rows(const float* src, int64_t src_stride, int64_t rows, int64_t cols, ops::TypedRows dst) {
  if (rows <= 0) return;
  MLAR_CUDA_DISPATCH_FLOAT(dst.dtype, "round_rows",
                           round_kernel<T><<<static_cast<unsigned>(rows), 256>>>(
                               src, src_stride, cols, static_cast<T*>(const_cast<void*>(dst.data)), dst.stride));
  check_launch("round_rows");
}

void widen_rows(ops::TypedRows src, int64_t rows, int64_t cols, float* dst, int64_t dst_stride) {
  if (rows <= 0) return;
  MLAR_CUDA_DISPATCH_FLOAT(src.dtype, "widen_rows",
                           widen_kernel<T><<<static_cast<unsigned>(rows), 256>>>(static_cast<const T*>(src.data),
                                                                                 src.stride, cols, dst, dst_stride));
  check_launch("widen_rows");
}

}  // namespace mlar::cuda
