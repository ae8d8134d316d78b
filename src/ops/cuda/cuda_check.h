// Internal to ops/cuda: CUDA and cuBLAS status checks that throw mlar::Error.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "util/error.h"

#define MLAR_CUDA_CHECK(call)                                                                         \
  do {                                                                                                \
    cudaError_t mlar_err_ = (call);                                                                   \
    if (mlar_err_ != cudaSuccess)                                                                     \
      ::mlar::fail("CUDA: {} failed: {} ({})", #call, cudaGetErrorString(mlar_err_), static_cast<int>(mlar_err_)); \
  } while (0)

#define MLAR_CUBLAS_CHECK(call)                                                            \
  do {                                                                                     \
    cublasStatus_t mlar_st_ = (call);                                                      \
    if (mlar_st_ != CUBLAS_STATUS_SUCCESS)                                                 \
      ::mlar::fail("cuBLAS: {} failed: {}", #call, cublasGetStatusString(mlar_st_));       \
  } while (0)
