#include "ops/cuda/moment.h"

#include "ops/cuda/blas_handle.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/device.h"

namespace mlar::cuda {
namespace {

// chunk[t, :] = [x[t, :] ; 1] widened to double: [n, dim+1].
__global__ void augment_kernel(const float* x, int64_t xs, int64_t n, int64_t dim, double* chunk) {
  const int64_t w = dim + 1;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * w) return;
  const int64_t t = idx / w, i = idx % w;
  chunk[idx] = i < dim ? static_cast<double>(x[t * xs + i]) : 1.0;
}

}  // namespace

void add_moment(const float* x, int64_t x_stride, int64_t n, int64_t dim, double* S, double* chunk) {
  if (n <= 0) return;
  const int64_t w = dim + 1;
  const int64_t total = n * w;
  augment_kernel<<<static_cast<unsigned>((total + 255) / 256), 256>>>(x, x_stride, n, dim, chunk);
  check_launch("add_moment (augment)");
  // Column-major: chunk is B = [w x n] (row-major [n, w]); S += B B^T. The row-major upper
  // triangle of S is its column-major lower triangle.
  const double one = 1.0;
  MLAR_CUBLAS_CHECK(cublasDsyrk(detail::blas(false), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, static_cast<int>(w),
                                static_cast<int>(n), &one, chunk, static_cast<int>(w), &one, S, static_cast<int>(w)));
}

}  // namespace mlar::cuda
