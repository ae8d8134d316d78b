// Attention over KV-cache rows kept in their storage dtype (F32 | BF16 | F16), f32
// accumulation. BF16/F16 rows are widened to f32 in registers or in small tiles
// (exact), so against causal_attention on the same (rounded) rows only the order of
// the sums differs.
//
// Decode (n_q < kKvDecodeBatch): the keys are split into ranges over the threads
// (each range covers every kv group, so K and V rows are read whole and in order;
// online softmax per range, partials merged at the end). Within a range, blocks of
// 64 keys; per block and group, every query head of the group (and all n_q queries)
// is scored against the block's keys W at a time (W = 16 / 8 / 4 floats per vector
// at AVX-512 / AVX2 / SSE2), the W per-key lane-wise dot products being reduced
// together by one shuffle tree; then P x V with the output rows in registers, so
// each cached row is read from memory once per step. The rows of the next block (or,
// for a head-major cache walked group by group, of the block two ahead) are asked
// into L2 a few lines before each score tile. MLA's absorbed evaluation is
// the case of one group of n_heads query heads whose keys and values are the same
// cache rows ([c | k_pe] and c): each row is then read (or widened) once for both.
// BF16/F16 rows are widened in registers where one pass of the tiles covers the
// group's query rows (GQA decode), else once per block into an L1 tile that every
// head reads (MLA). Scores are pre-scaled queries . keys with fused multiply-adds
// and a vectorised exp_approx softmax.
//
// On a CPU the absorbed MLA step is bound by arithmetic, not bytes: n_heads x
// (r + d_r + r) multiply-adds per cached row (16 x 224 for the 25% form of a
// 16-head model), about 7 per f32 byte and 14 per bf16 byte of cache; GQA decode
// does g x 2d per row of 2d values (1 per f32 byte at g = 4) and is bound by bytes.
//
// Prefill (n_q >= kKvDecodeBatch): the cached rows are widened into an f32 copy (when
// not F32) and causal_attention's sgemm path runs on it.
//
// MLA decode with 12+ query rows (heads x queries) over shared rows puts the rows in
// the vector lanes at the AVX-512 levels (kv_attention_lanes.inc). At the avx512bf16
// level, MLA decode over BF16 shared rows multiplies in BF16 (vdpbf16ps, f32
// accumulation) with the queries and the probabilities rounded to BF16, as GPU kernels
// do (kv_attention_bf16.inc): the outputs then differ from the f32 kernel's by about the
// BF16 rounding of the queries (1-2e-3 of their magnitude on random rows).
//
// Dispatch: the level of ops/cpu_features.h (cpu_active_level: the CPU's best, or
// lower through MLAR_CPU=scalar|avx2|avx512|avx512bf16 or set_cpu_level).
#pragma once
#include <cstdint>

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
// dims.v_stride ignored: the strides are those of k and v; head strides from dims):
// k: [q_start + n_q, n_kv_heads, dk] rows, v: [q_start + n_q, n_kv_heads, dv] rows.
// With head strides (a head-major cache) the decode kernel walks one kv group's
// range at a time, so each group's K and V rows are read as two streams.
// Decode kernel for n_q < kKvDecodeBatch, widen + causal_attention otherwise.
void kv_attention(const float* q, TypedRows k, TypedRows v, float* out, const AttentionDims& dims);
// The decode kernel alone, for any n_q (tests; kv_attention picks it for short batches).
void kv_decode_attention(const float* q, TypedRows k, TypedRows v, float* out, const AttentionDims& dims);

}  // namespace mlar::ops
