// Internal to ops/cuda: the cuBLAS handles every op shares (one per math mode).
#pragma once
#include <cublas_v2.h>

namespace mlar::cuda::detail {

// Exact products (CUBLAS_PEDANTIC_MATH; FP64 stays FP64) or TF32 tensor cores for f32 GEMMs.
cublasHandle_t blas(bool tf32);

}  // namespace mlar::cuda::detail
