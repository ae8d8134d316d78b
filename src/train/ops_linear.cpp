#include "train/ops_linear.h"

#include <cblas.h>

#include <algorithm>

#include "ops/parallel.h"
#include "ops/threads.h"

namespace mlar::train {
namespace {

// Work is split into blocks of fixed size (never derived from the thread count), so
// every BLAS call, and therefore every rounding, is the same however many threads
// run the blocks: training repeats bit for bit on any core count.
constexpr int64_t kRows = 64;  // rows of x / y per block (forward, dx)
constexpr int64_t kOuts = 32;  // output rows of dW per block

int I(int64_t v) { return static_cast<int>(v); }

int64_t blocks(int64_t n, int64_t size) { return (n + size - 1) / size; }

}  // namespace

void linear_forward(const float* x, const float* w, const float* b, float* y, const LinearDims& d) {
  if (d.n <= 0 || d.out <= 0) return;
  ops::init_cpu_threads();
  const int64_t xs = d.xs(), ys = d.ys();
  ops::parallel_for(blocks(d.n, kRows), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * kRows, r1 = std::min(d.n, r0 + kRows);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, I(r1 - r0), I(d.out), I(d.in), 1.0f, x + r0 * xs, I(xs), w,
                  I(d.in), 0.0f, y + r0 * ys, I(ys));
      if (b)
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t o = 0; o < d.out; ++o) y[r * ys + o] += b[o];
    }
  });
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, bool accumulate_dx, float* dw,
                     float* db, const LinearDims& d) {
  if (d.n <= 0 || d.out <= 0 || d.in <= 0) return;
  ops::init_cpu_threads();
  const int64_t xs = d.xs(), ys = d.ys();
  if (dx) {  // dx[rows] = dy[rows] W: [m, out] x [out, in]
    const float beta = accumulate_dx ? 1.0f : 0.0f;
    ops::parallel_for(blocks(d.n, kRows), 1, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t r0 = blk * kRows, r1 = std::min(d.n, r0 + kRows);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(r1 - r0), I(d.in), I(d.out), 1.0f, dy + r0 * ys,
                    I(ys), w, I(d.in), beta, dx + r0 * xs, I(xs));
      }
    });
  }
  if (dw) {  // dw[o0:o1] += dy[:, o0:o1]^T x: [m, n] x [n, in]
    ops::parallel_for(blocks(d.out, kOuts), 1, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t o0 = blk * kOuts, o1 = std::min(d.out, o0 + kOuts);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I(o1 - o0), I(d.in), I(d.n), 1.0f, dy + o0, I(ys), x,
                    I(xs), 1.0f, dw + o0 * d.in, I(d.in));
      }
    });
  }
  if (db) {
    ops::parallel_for(d.out, 16, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        double s = 0;
        for (int64_t t = 0; t < d.n; ++t) s += dy[t * ys + o];
        db[o] += static_cast<float>(s);
      }
    });
  }
}

}  // namespace mlar::train
