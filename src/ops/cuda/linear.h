// Projections on the device, the counterpart of ops::linear: f32 activations, weights
// in their storage dtype (F32 | BF16 | F16, HF [out, in]), f32 accumulation.
//
// n <= kGemvRows (decode, short batches): one warp per output row reads the weight row
// once for all n activation rows (16-byte loads where rows are aligned), so a step
// streams the weights at close to the memory bandwidth. Longer batches (prefill,
// evaluation): cuBLAS SGEMM. F32 weights: exact f32 products (no TF32), the CPU's
// arithmetic. BF16/F16 weights: widened into an f32 scratch (exactly) and multiplied on
// TF32 tensor cores, which round the activations to a 10-bit mantissa (relative error
// <= 2^-10 of sum |w x| per output; MLAR_CUDA_GEMM=exact keeps exact f32 products), a block of
// output rows at a time: at most 256 MiB of widened weights (MLAR_CUDA_WIDEN_FLOATS=N floats, tests).
#pragma once
#include <cstdint>

#include "ops/cuda/device_tensor.h"
#include "ops/kv_attention.h"  // TypedRows

namespace mlar::cuda {

constexpr int64_t kGemvRows = 8;

// Whether projections of more than kGemvRows rows with weights of this dtype run on TF32 tensor cores.
bool gemm_uses_tf32(DType weights);

// y[t, o] = sum_i x[t, i] W[o, i] (+ bias[o]) for t < n, o < out; W: [out, in] rows
// of w.stride elements; bias: [out] f32 or null; x, y row strides in floats.
void linear(const float* x, int64_t x_stride, ops::TypedRows w, int64_t out, int64_t in, const float* bias,
            float* y, int64_t y_stride, int64_t n);

// The same with a device weight [out, in] and bias [out] (F32, or empty), as ops::linear
// takes TypedTensors: row strides x_stride / y_stride, or packed (in / out).
inline void linear(const float* x, int64_t x_stride, const DeviceTensor& w, const DeviceTensor& b, float* y,
                   int64_t y_stride, int64_t n) {
  linear(x, x_stride, w.rows(), w.shape[0], w.shape[1], b.empty() ? nullptr : b.f32(), y, y_stride, n);
}
inline void linear(const float* x, const DeviceTensor& w, const DeviceTensor& b, float* y, int64_t n) {
  linear(x, w.shape[1], w, b, y, w.shape[0], n);
}

}  // namespace mlar::cuda
