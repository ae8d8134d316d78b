// Internal to ops/cuda: the tensor-core kernel for MLA's absorbed attention over a
// BF16 latent cache (one shared key/value row set: keys [c | k_pe], values c, the
// first dv columns of the same rows). Chosen by attention() when it fits.
//
// A block holds up to 64 query heads of one query token and a range of keys. Per
// tile of 32 cached rows (cp.async, double-buffered in shared memory, read from
// memory once for all the block's heads): S = Q K^T by mma.sync m16n8k16 (bf16 in,
// f32 accumulate), an online softmax per head over the tile, then O += P V by
// mma.sync with V the tile's first dv columns and O kept in registers, the 8 warps
// splitting O's columns. Queries are rounded to bf16 after the softmax scale, and so
// are the probabilities P (each head's running sum adds the rounded values).
#pragma once
#include <cstdint>

#include "ops/attention.h"
#include "ops/cuda/attention_plan.h"
#include "ops/kv_attention.h"

struct dim3;

namespace mlar::cuda::detail {

constexpr int64_t kMlaKeysPerTile = 32;

// Whether the tensor-core kernel runs these rows and dims: BF16, one kv head, the same
// rows for keys and values (16-byte aligned, stride a multiple of 8), dk % 16 == 0,
// dv % 64 == 0, dv <= dk <= 1152, dv <= 1024.
bool mla_tensor_core_fits(ops::TypedRows k, ops::TypedRows v, const ops::AttentionDims& d);
// Query heads per block (16, 32 or 64) for n_heads heads of value size dv.
int mla_heads_per_block(int64_t n_heads, int64_t dv);
// Launches the kernel on `grid` (x = key ranges, y = head tiles, z = sequence * n_q + query).
void mla_tensor_core_launch(const AttnParams& p, const dim3& grid);

}  // namespace mlar::cuda::detail
