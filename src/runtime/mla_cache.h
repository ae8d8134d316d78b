// What an MLA layer caches per token (MLA.md §2): the latent c (r values, after the
// bias and the optional latent RMSNorm) and the roped rope key k_pe (n_r * d_r
// values), nothing else. Both live in one row per token, [c | k_pe], as DeepSeek's
// kv_a_proj_with_mqa produces them and FlashMLA caches them: the absorbed
// evaluation then reads each row once as a key ([c | k_pe]) and as a value (c).
// Rows are stored in the cache's dtype (F32, BF16 or F16).
#pragma once
#include <cstdint>

#include "runtime/cache_rows.h"
#include "runtime/kv_cache.h"

namespace mlar {

class MlaLayerCache final : public LayerCache {
 public:
  MlaLayerCache(int64_t rank, int64_t rope_values, DType dtype = DType::F32)
      : rank_(rank), rope_(rope_values), rows_(dtype, rank + rope_values) {}
  int64_t values_per_token() const override { return rank_ + rope_; }
  DType dtype() const override { return rows_.dtype(); }
  int64_t reserved() const override { return rows_.reserved(); }
  void reserve(int64_t n) override { rows_.reserve(n); }

  int64_t rank() const { return rank_; }         // r
  int64_t rope_values() const { return rope_; }  // n_r * d_r
  int64_t row_stride() const { return rank_ + rope_; }
  // [reserved, r + n_r * d_r]: per token [c | k_pe] (k_pe roped), row of token pos at pos.
  CacheRows& rows() { return rows_; }
  const CacheRows& rows() const { return rows_; }

 private:
  int64_t rank_, rope_;
  CacheRows rows_;
};

}  // namespace mlar
