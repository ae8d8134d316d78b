// What an MLA layer caches per token (MLA.md §2): the latent c (r values, after the
// bias and the optional latent RMSNorm) and the roped rope key k_pe (n_r * d_r
// values), and for a model with per-head norms as score scales (MlaConfig::qk_scale_dim)
// the n_kv key scales s_j after them: [c | k_pe | s]. Both live in one row per token, [c | k_pe], as DeepSeek's
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
  MlaLayerCache(int64_t rank, int64_t rope_values, DType dtype = DType::F32, int64_t key_scales = 0)
      : rank_(rank), rope_(rope_values), scales_(key_scales), rows_(dtype, rank + rope_values + key_scales) {}
  int64_t values_per_token() const override { return rank_ + rope_ + scales_; }
  DType dtype() const override { return rows_.dtype(); }
  int64_t reserved() const override { return rows_.reserved(); }
  void reserve(int64_t n) override { rows_.reserve(n); }

  int64_t rank() const { return rank_; }         // r
  int64_t rope_values() const { return rope_; }  // n_r * d_r
  int64_t key_scales() const { return scales_; }  // n_kv or 0
  int64_t row_stride() const { return rank_ + rope_ + scales_; }
  // [reserved, r + n_r * d_r (+ n_kv)]: per token [c | k_pe (| s)] (k_pe roped), row of token pos at pos.
  CacheRows& rows() { return rows_; }
  const CacheRows& rows() const { return rows_; }

 private:
  int64_t rank_, rope_, scales_;
  CacheRows rows_;
};

}  // namespace mlar
