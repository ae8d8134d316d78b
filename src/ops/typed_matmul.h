// Projections and lookups on weights kept in their storage dtype (F32, BF16, F16),
// HF [out, in] layout, f32 activations and f32 accumulation. BF16/F16 rows are widened
// to f32 in registers (exact), so the only difference from the F32 kernel on the
// same (rounded) weights is the order of the sums. Activations are never rounded to
// bf16 (no vdpbf16ps), which would lose about 3 significant digits of x.
//
// Dispatch: chosen once at run time from what the CPU has (AVX-512F, else AVX2+F16C,
// else scalar; avx512bf16 runs the AVX-512 kernels here); MLAR_CPU=scalar|avx2|
// avx512|avx512bf16 in the environment forces a level no higher than the CPU's (tests
// run every level the machine has).
#pragma once
#include <cstdint>
#include <string>

#include "tensor/dtype.h"

namespace mlar::ops {

// y[n, out] = x[n, in] * W[out, in]^T (+ bias[out]); row t of x at x + t * x_stride
// (>= in), row t of y at y + t * y_stride (>= out). w holds out * in values of `wt`
// (F32 | BF16 | F16; anything else throws mlar::Error). bias may be null.
// n == 1 (decode): a matrix-vector product streaming W once, split over output rows
// across threads. Small n (AVX-512: any n, in passes of 128 rows) streams W the same
// way with up to 4 activation rows per pass over L2-sized blocks of W; larger n:
// blocks of W rows widened to f32 and multiplied by sgemm (F32: ops::matmul_strided).
void matmul_typed(const float* x, int64_t x_stride, const void* w, DType wt, const float* bias, float* y,
                  int64_t y_stride, int64_t n, int64_t in, int64_t out);

// out[r, :] = table[ids[r], :] widened to f32. table: [rows, dim] of `t`.
void gather_rows_typed(const void* table, DType t, const int32_t* ids, float* out, int64_t n, int64_t dim);

// dst[i] = float(src[i]) for i in [0, n) (F32 | BF16 | F16 source).
void to_f32(const void* src, DType t, float* dst, int64_t n);
// dst[i] = src[i] rounded to `t` (nearest even; F32 | BF16 | F16).
void from_f32(const float* src, DType t, void* dst, int64_t n);

// The instruction level the kernels dispatch to now: "avx512", "avx2" or "scalar".
std::string cpu_level();

}  // namespace mlar::ops
