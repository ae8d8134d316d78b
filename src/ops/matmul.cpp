#include "ops/matmul.h"

#include <cblas.h>

#include <algorithm>

#include "ops/parallel.h"
#include "ops/threads.h"

namespace mlar::ops {
namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelMacs = 1 << 17;

// y[rows r0..r1, cols c0..c1] for the slice [r0, r1) x [c0, c1); xs, ys: row strides.
void slice(const float* x, int64_t xs, const float* w, const float* bias, float* y, int64_t ys, int64_t in,
           int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const int64_t m = r1 - r0, nc = c1 - c0;
  if (m <= 0 || nc <= 0) return;
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(nc), static_cast<int>(in), 1.0f, w + c0 * in,
                static_cast<int>(in), x + r0 * xs, 1, 0.0f, y + r0 * ys + c0, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(nc),
                static_cast<int>(in), 1.0f, x + r0 * xs, static_cast<int>(xs), w + c0 * in, static_cast<int>(in), 0.0f,
                y + r0 * ys + c0, static_cast<int>(ys));
  }
  if (bias) {
    for (int64_t r = r0; r < r1; ++r) {
      float* yr = y + r * ys;
      for (int64_t c = c0; c < c1; ++c) yr[c] += bias[c];
    }
  }
}

}  // namespace

void matmul(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t in, int64_t out) {
  matmul_strided(x, in, w, bias, y, out, n, in, out);
}

void matmul_strided(const float* x, int64_t x_stride, const float* w, const float* bias, float* y, int64_t y_stride,
                    int64_t n, int64_t in, int64_t out) {
  if (n <= 0 || out <= 0) return;
  init_cpu_threads();
  // Split the output columns (each thread streams its own rows of W) when there are
  // enough of them, else the input rows.
  if (out >= 128 || n == 1) {
    const int64_t grain = pick_grain(out, n * in, kParallelMacs, 32, 16);
    parallel_for(out, grain,
                 [&](int64_t c0, int64_t c1) { slice(x, x_stride, w, bias, y, y_stride, in, 0, n, c0, c1); });
  } else {
    const int64_t grain = pick_grain(n, in * out, kParallelMacs, 4);
    parallel_for(n, grain,
                 [&](int64_t r0, int64_t r1) { slice(x, x_stride, w, bias, y, y_stride, in, r0, r1, 0, out); });
  }
}

}  // namespace mlar::ops
