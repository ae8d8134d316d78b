// Causal attention over cached rows on the device, the counterpart of
// ops::kv_attention (GQA) and of MLA's absorbed evaluation (ops::shared_kv_attention:
// n_kv_heads = 1, keys [c | k_pe] and values c being the same cache rows). Rows are
// read in their storage dtype (F32 | BF16 | F16) with f32 accumulation.
//
// Flash-decoding: the keys of each query are split into ranges over thread blocks
// (enough blocks to fill the device at batch 1), each range runs an online softmax
// over tiles of keys kept in shared memory, and a second kernel merges the ranges'
// partial outputs. One block covers up to 16 query heads of one kv group, so a tile
// of key/value rows is read from memory once for those heads. With BF16 rows,
// n_kv_heads = 1 (MLA absorbed), dk % 16 == 0 and dv % 64 == 0, the tensor-core
// kernel of mla_decode.cu runs instead (attention_path() says which one).
#pragma once
#include <cstdint>

#include "ops/attention.h"     // AttentionDims
#include "ops/kv_attention.h"  // TypedRows

namespace mlar::cuda {

// Several sequences of equal length at once (decode at batch > 1): sequence b's
// queries at q + b * q_stride, rows at k/v.data + b * kv_stride elements, output at
// out + b * out_stride. count 1: a single sequence (strides unused).
struct AttentionBatch {
  int64_t count = 1;
  int64_t q_stride = 0, kv_stride = 0, out_stride = 0;
};

// q:   [n_q, n_heads, dk] f32   (row stride dims.q_stride, 0 = packed)
// k:   [q_start + n_q, n_kv_heads, dk] rows of k.stride elements
// v:   [q_start + n_q, n_kv_heads, dv] rows of v.stride elements (may be k's rows)
// out: [n_q, n_heads, dv] f32   (row stride dims.out_stride, 0 = packed)
// out_h(i) = sum_{t <= q_start+i} softmax_t(scale * q_h(i) . k_j(t)) v_j(t), j = h / (n_heads / n_kv_heads).
// dims.key_scale is not supported (throws). Any n_q (prefill and decode).
void attention(const float* q, ops::TypedRows k, ops::TypedRows v, float* out, const ops::AttentionDims& dims,
               const AttentionBatch& batch = {});

enum class AttentionPath { Tiled, TensorCore };
// The kernel attention() picks for these rows and dims (MLAR_CUDA_ATTN=tiled forces
// the tiled kernel, for comparisons).
AttentionPath attention_path(ops::TypedRows k, ops::TypedRows v, const ops::AttentionDims& dims);

// How attention() runs these rows: the kernel, query heads per block, keys per tile and the split of
// each query's keys into ranges (MLAR_CUDA_SPLITS=N fixes the number of ranges, for benchmarks).
struct AttentionPlan {
  AttentionPath path = AttentionPath::Tiled;
  int heads_per_block = 16, head_tiles = 1, splits = 1;
  int64_t keys_per_tile = 32, keys_per_split = 0;
};
AttentionPlan attention_plan(ops::TypedRows k, ops::TypedRows v, const ops::AttentionDims& dims,
                             const AttentionBatch& batch = {});

}  // namespace mlar::cuda
