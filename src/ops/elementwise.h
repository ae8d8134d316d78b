// Elementwise helpers: residual add, scaling, row gather (embedding lookup).
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

}  // namespace mlar::ops
