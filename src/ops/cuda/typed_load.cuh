// Internal to ops/cuda: widening loads of F32 | BF16 | F16 storage in kernels.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace mlar::cuda::detail {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// Warp-wide sums and maxima (all 32 lanes take part and get the result).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace mlar::cuda::detail

// Calls `body.template operator()<T>()` with T the device type of DType `dt`
// (F32 -> float, BF16 -> __nv_bfloat16, F16 -> __half); other types throw.
#define MLAR_CUDA_DISPATCH_FLOAT(dt, what, ...)                                          \
  switch (dt) {                                                                          \
    case ::mlar::DType::F32: { using T = float; __VA_ARGS__; break; }                    \
    case ::mlar::DType::BF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }           \
    case ::mlar::DType::F16: { using T = __half; __VA_ARGS__; break; }                   \
    default: ::mlar::fail("{}: storage dtype {} is not F32, BF16 or F16", what, ::mlar::dtype_name(dt)); \
  }
