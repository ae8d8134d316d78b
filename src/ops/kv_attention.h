// Attention over KV-cache rows kept in their storage dtype (F32 | BF16 | F16), f32
// accumulation. BF16/F16 rows are widened to f32 in registers or in small tiles
// (exact), so against causal_attention on the same (rounded) rows only the order of
// the sums differs.
//
// Decode (n_q < kKvDecodeBatch): for each kv group, all the query heads of the group
// (and all n_q queries) against each cached key row in one pass, so a decode step
// reads each cached row once per group. The keys are split over the threads (each a
// range of keys, online softmax with its own max / sum / partial output, blocks of 32
// keys), and the partial results are merged at the end. MLA's absorbed evaluation is
// the case of one group of n_heads query heads whose keys and values are the same
// cache rows ([c | k_pe] and c): each row is then widened once per block for both.
//
// Prefill (n_q >= kKvDecodeBatch): the cached rows are widened into an f32 copy (when
// not F32) and causal_attention's sgemm path runs on it.
//
// Dispatch: chosen once at run time from what the CPU has (AVX-512F, else AVX2 + FMA +
// F16C, else scalar); MLAR_CPU=scalar|avx2|avx512 forces a level no higher than the
// CPU's, and set_kv_kernel_level does the same for tests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "tensor/dtype.h"

namespace mlar::ops {

// Rows of a cache in storage dtype: row t, column c at element t * stride + c of data.
struct TypedRows {
  const void* data = nullptr;
  DType dtype = DType::F32;  // F32 | BF16 | F16
  int64_t stride = 0;        // elements between consecutive rows
};

// The same rows starting `cols` columns further right.
TypedRows offset_cols(TypedRows r, int64_t cols);

// dst[t * dst_stride + c] = float(src row t, column c), t < rows, c < cols.
void widen_rows(TypedRows src, int64_t rows, int64_t cols, float* dst, int64_t dst_stride);
// dst row t = src row t rounded to `t` (nearest even), t < rows, c < cols.
void round_rows(const float* src, int64_t src_stride, int64_t rows, int64_t cols, void* dst, DType t,
                int64_t dst_stride);

// Query batches shorter than this run the decode kernel.
constexpr int64_t kKvDecodeBatch = 16;

// Causal attention as causal_attention (same layouts for q and out, dims.k_stride and
// dims.v_stride ignored: the strides are those of k and v):
// k: [q_start + n_q, n_kv_heads, dk] rows, v: [q_start + n_q, n_kv_heads, dv] rows.
// Decode kernel for n_q < kKvDecodeBatch, widen + causal_attention otherwise.
void kv_attention(const float* q, TypedRows k, TypedRows v, float* out, const AttentionDims& dims);
// The decode kernel alone, for any n_q (tests; kv_attention picks it for short batches).
void kv_decode_attention(const float* q, TypedRows k, TypedRows v, float* out, const AttentionDims& dims);

// The levels this CPU runs ("scalar", "avx2", "avx512": those it supports), the level
// the kernels use now, and a way to lower it (throws mlar::Error on a level the CPU
// lacks or an unknown name). Not thread-safe against running kernels.
std::vector<std::string> kv_kernel_levels();
std::string kv_kernel_level();
void set_kv_kernel_level(const std::string& level);

}  // namespace mlar::ops
