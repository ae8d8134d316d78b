// Internal to ops/cuda: the launch parameters both attention kernels share.
#pragma once
#include <cstdint>

namespace mlar::cuda::detail {

struct AttnParams {
  const float* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  float* part_o = nullptr;  // [batch * n_q, splits, n_heads, dv] unnormalised outputs
  float* part_ml = nullptr;  // [batch * n_q, splits, n_heads, 2] running max, sum
  int64_t n_q = 0, n_heads = 0, n_kv = 0, dk = 0, dv = 0;
  int64_t q_stride = 0, k_stride = 0, v_stride = 0;  // elements between token rows
  int64_t q_batch = 0, kv_batch = 0;                 // elements between sequences
  int64_t q_start = 0;
  float scale = 1.0f;
  int heads_per_block = 16;   // query heads of one kv group a block covers
  int head_tiles = 1;         // blocks per kv group
  int64_t keys_per_split = 0;
  int splits = 1;
};

}  // namespace mlar::cuda::detail
