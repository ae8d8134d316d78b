#include "ops/cuda/blas_handle.h"

#include "ops/cuda/cuda_check.h"

namespace mlar::cuda::detail {

cublasHandle_t blas(bool tf32) {
  static cublasHandle_t exact = [] {
    cublasHandle_t x = nullptr;
    MLAR_CUBLAS_CHECK(cublasCreate(&x));
    MLAR_CUBLAS_CHECK(cublasSetMathMode(x, CUBLAS_PEDANTIC_MATH));
    return x;
  }();
  static cublasHandle_t fast = [] {
    cublasHandle_t x = nullptr;
    MLAR_CUBLAS_CHECK(cublasCreate(&x));
    MLAR_CUBLAS_CHECK(cublasSetMathMode(x, CUBLAS_TF32_TENSOR_OP_MATH));
    return x;
  }();
  return tf32 ? fast : exact;
}

}  // namespace mlar::cuda::detail
