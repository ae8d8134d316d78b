// Elementwise helpers: residual add, scaling, row gather (embedding lookup), strided
// copies of per-head parts of rows.
#pragma once
#include <cstdint>

namespace mlar::ops {

// y[i] += x[i] for i in [0, n).
void add_inplace(float* y, const float* x, int64_t n);

// x[i] *= s for i in [0, n).
void scale_inplace(float* x, float s, int64_t n);

// out[r, :] = table[ids[r], :] for r in [0, n). table: [rows, dim]; out: [n, dim].
// Ids are not checked here (callers validate against the table's row count).
void gather_rows(const float* table, const int32_t* ids, float* out, int64_t n, int64_t dim);

// For t in [0, n), h in [0, heads): copies `width` floats from
// src + t * src_stride + h * src_head_stride to dst + t * dst_stride + h * dst_head_stride.
// src_head_stride 0 broadcasts one part of each source row to every head. The views
// must not overlap.
void copy_heads(const float* src, int64_t src_stride, int64_t src_head_stride, float* dst, int64_t dst_stride,
                int64_t dst_head_stride, int64_t n, int64_t heads, int64_t width);

}  // namespace mlar::ops
