// What an MLA layer caches per token (MLA.md §2): the latent c (r values, after the
// bias and the optional latent RMSNorm) and the roped rope key k_pe (n_r * d_r
// values), nothing else. Both live in one row per token, [c | k_pe], as DeepSeek's
// kv_a_proj_with_mqa produces them and FlashMLA caches them: the absorbed
// evaluation then reads each row once as a key ([c | k_pe]) and as a value (c).
#pragma once
#include <cstdint>

#include "runtime/kv_cache.h"

namespace mlar {

class MlaLayerCache final : public LayerCache {
 public:
  MlaLayerCache(int64_t rank, int64_t rope_values) : rank_(rank), rope_(rope_values) {}
  int64_t values_per_token() const override { return rank_ + rope_; }
  int64_t reserved() const override { return rows_.empty() ? 0 : rows_.dim(0); }
  void reserve(int64_t n) override;

  int64_t rank() const { return rank_; }         // r
  int64_t rope_values() const { return rope_; }  // n_r * d_r
  int64_t row_stride() const { return rank_ + rope_; }
  // [r + n_r * d_r]: the cache row of token pos; rows of later tokens follow it.
  float* row(int64_t pos) { return rows_.row(pos); }
  const float* row(int64_t pos) const { return rows_.row(pos); }
  float* latent(int64_t pos) { return row(pos); }            // [r]
  float* rope_key(int64_t pos) { return row(pos) + rank_; }  // [n_r * d_r], roped
  const float* latent(int64_t pos) const { return row(pos); }
  const float* rope_key(int64_t pos) const { return row(pos) + rank_; }

 private:
  int64_t rank_, rope_;
  Tensor rows_;  // [reserved, r + n_r * d_r]: per token [c | k_pe]
};

}  // namespace mlar
