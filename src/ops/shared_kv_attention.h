// Causal attention of n_heads query heads over ONE shared set of key/value rows
// (multi-query attention). MLA's absorbed evaluation (MLA.md §2) is exactly this over
// the latent cache: the keys of token t are its cache row [c_t | k_pe_t] (or only
// k_pe_t when no NoPE part scores), the values are c_t (the same rows, first r
// values), and the queries are [W_uk[h]^T q_nope_h | q_pe_h] per head. Every head
// streams the same cache rows, so a decode step reads each row once for all heads.
#pragma once
#include <cstdint>

#include "ops/attention.h"

namespace mlar::ops {

// Query batches of at least this many tokens go to causal_attention's blocked
// sgemm path (with n_kv_heads = 1); shorter ones (decode) run the kernel below.
constexpr int64_t kSharedKvBatch = 16;

// Floats of `scores` scratch shared_kv_attention needs for `dims`:
// n_q * n_heads * (q_start + n_q) for short batches (and any batch with key_scale),
// 0 for long ones.
int64_t shared_kv_scores_size(const AttentionDims& dims);

// dims.n_kv_heads must be 1. Layouts (strides as in AttentionDims, 0 = packed):
// q:   [n_q, n_heads, dk]    heads packed dk apart inside a row of q_stride
// k:   [q_start + n_q, dk]   row stride k_stride
// v:   [q_start + n_q, dv]   row stride v_stride (may be the same rows as k)
// out: [n_q, n_heads, dv]    heads packed dv apart inside a row of out_stride
// out_h(i) = sum_{t <= q_start+i} softmax_t(scale * q_h(i) . k(t)) v(t).
// Short batches: scores [n_q * n_heads, keys] by one sgemm per block of keys (blocks
// in parallel), a softmax per row, then probabilities x values by one sgemm per
// block of value columns (in parallel), so even one query token uses every thread.
// `scores` holds shared_kv_scores_size(dims) floats (may be null when that is 0).
// With dims.key_scale every batch takes the short-batch path, each score multiplied
// by its key's scale before the softmax.
void shared_kv_attention(const float* q, const float* k, const float* v, float* out, const AttentionDims& dims,
                         float* scores);

}  // namespace mlar::ops
