#include "ops/head_matmul.h"

#include <cblas.h>

#include <algorithm>

#include "ops/parallel.h"
#include "ops/threads.h"

namespace mlar::ops {
namespace {

// Rows per task: blocks of this many rows of one head are one sgemm call.
constexpr int64_t kRowBlock = 128;

}  // namespace

void matmul_heads(const float* x, const float* w, float* y, const HeadMatmulDims& d) {
  if (d.n <= 0 || d.heads <= 0 || d.out <= 0) return;
  init_cpu_threads();
  const int64_t blocks = (d.n + kRowBlock - 1) / kRowBlock;
  const int64_t rows = std::min(d.n, kRowBlock);
  const int in = static_cast<int>(d.in), out = static_cast<int>(d.out);
  // W_h as sgemm/sgemv sees it: [out, in] -> transposed operand, ld in; [in, out] -> as is, ld out.
  const CBLAS_TRANSPOSE wt = d.w_in_out ? CblasNoTrans : CblasTrans;
  const int ldw = d.w_in_out ? out : in;
  parallel_for(d.heads * blocks, pick_grain(d.heads * blocks, rows * d.in * d.out, 1 << 17),
               [&](int64_t t0, int64_t t1) {
                 for (int64_t task = t0; task < t1; ++task) {
                   const int64_t h = task / blocks, r0 = (task % blocks) * kRowBlock;
                   const int64_t m = std::min(d.n, r0 + kRowBlock) - r0;
                   const float* xh = x + r0 * d.x_stride + h * d.x_head_stride;
                   const float* wh = w + h * d.w_head_stride;
                   float* yh = y + r0 * d.y_stride + h * d.y_head_stride;
                   if (m == 1) {
                     // y = op(W) x: [out, in] W -> NoTrans (M = out, N = in); [in, out] -> Trans (M = in, N = out).
                     if (d.w_in_out)
                       cblas_sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, wh, out, xh, 1, 0.0f, yh, 1);
                     else
                       cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, wh, in, xh, 1, 0.0f, yh, 1);
                   } else {
                     cblas_sgemm(CblasRowMajor, CblasNoTrans, wt, static_cast<int>(m), out, in, 1.0f, xh,
                                 static_cast<int>(d.x_stride), wh, ldw, 0.0f, yh, static_cast<int>(d.y_stride));
                   }
                 }
               });
}

}  // namespace mlar::ops
