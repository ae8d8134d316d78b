// Causal scaled-dot-product attention with grouped key/value heads (GQA, MLA.md §1).
//
// Query head h reads key/value head j(h) = h / (n_heads / n_kv_heads). With
// n_kv_heads == n_heads it is plain multi-head attention, which is also how an MLA
// layer evaluated the naive way (per-head keys and values expanded from the latent,
// key size != value size) runs through it.
#pragma once
#include <cstdint>

namespace mlar::ops {

struct AttentionDims {
  int64_t n_q = 0;         // query tokens
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // key/value heads; divides n_heads
  int64_t dk = 0;          // query/key head size
  int64_t dv = 0;          // value head size
  // Floats between consecutive tokens (rows) of each buffer; 0 means packed
  // (n_heads*dk for q, n_kv_heads*dk for k, n_kv_heads*dv for v, n_heads*dv for out;
  // dk for k and dv for v when their head strides are set).
  int64_t q_stride = 0, k_stride = 0, v_stride = 0, out_stride = 0;
  // Floats between kv head j and j + 1 of k and of v; 0 means side by side in a row
  // (dk, dv). A head-major cache ([n_kv_heads, reserved tokens, d]) has row stride d
  // and head stride reserved * d: each kv head's rows are one stream.
  int64_t k_head_stride = 0, v_head_stride = 0;
  // The head strides in effect (the defaults filled in).
  int64_t k_heads_apart() const { return k_head_stride ? k_head_stride : dk; }
  int64_t v_heads_apart() const { return v_head_stride ? v_head_stride : dv; }
  // Key index of query 0: query i attends keys [0, q_start + i] (causal). For a
  // cache holding every earlier token, q_start = tokens cached before this batch.
  int64_t q_start = 0;
  float scale = 1.0f;  // usually 1/sqrt(dk)
  // Optional per-key score multipliers (shared_kv_attention only): head h's score
  // against key t is also multiplied by key_scale[t * key_scale_stride + h / key_scale_group].
  const float* key_scale = nullptr;
  int64_t key_scale_stride = 0, key_scale_group = 1;

  // Grouped-query attention of n_q tokens after q_start cached ones: heads of d for queries, keys
  // and values, packed rows, scale 1/sqrt(d).
  static AttentionDims grouped(int64_t n_q, int64_t n_heads, int64_t n_kv_heads, int64_t d, int64_t q_start);
};

// q:   [n_q, n_heads, dk]            (row stride q_stride)
// k:   [q_start + n_q, n_kv_heads, dk] (row stride k_stride, head stride k_head_stride)
// v:   [q_start + n_q, n_kv_heads, dv] (row stride v_stride, head stride v_head_stride)
// out: [n_q, n_heads, dv]            (row stride out_stride)
// out_h(i) = sum_{t <= q_start+i} softmax_t(scale * q_h(i) . k_j(t)) v_j(t).
// Decode and short batches (n_q < 16): parallel over (query, kv group) pairs, each
// loading a key/value row once for all the query heads of its group. Longer
// batches (prefill): per (head, block of 64 queries) two sgemm calls, scores
// [64, keys] then probabilities x values.
void causal_attention(const float* q, const float* k, const float* v, float* out, const AttentionDims& dims);

}  // namespace mlar::ops
