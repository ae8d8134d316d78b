// Per-sequence attention caches.
//
// Each layer's attention decides what it caches per token (a LayerCache subclass):
// GQA keeps K and V rows (2 * n_kv * d values per token, MLA.md §1); an MLA layer
// keeps a latent and rope keys (r + n_r * d_r values, §2). Values are stored in the
// dtype chosen when the cache is made (F32, BF16 or F16; computed in f32 and rounded
// to nearest even when written). KvCache holds one LayerCache per layer and the
// number of tokens cached, and reports bytes in the stored dtype.
// Storage grows geometrically up to the context limit, so a model with a long
// max_position_embeddings does not allocate its whole context up front.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/cache_rows.h"
#include "tensor/dtype.h"

namespace mlar {

// What one layer keeps for the tokens of one sequence.
class LayerCache {
 public:
  virtual ~LayerCache() = default;
  virtual int64_t values_per_token() const = 0;  // values cached per token
  virtual DType dtype() const = 0;               // how they are stored
  virtual int64_t reserved() const = 0;          // tokens the storage holds now
  // Grows storage to hold at least n tokens, keeping the rows already written.
  virtual void reserve(int64_t n) = 0;
  int64_t bytes_per_token() const { return values_per_token() * static_cast<int64_t>(dtype_size(dtype())); }
  int64_t bytes_reserved() const { return reserved() * bytes_per_token(); }
};

// GQA: K and V rows of n_kv * d values per token, each stored head-major (one
// stream per kv head, cache_rows.h).
class GqaLayerCache final : public LayerCache {
 public:
  explicit GqaLayerCache(int64_t kv_dim, DType dtype = DType::F32, int64_t kv_heads = 1)
      : kv_dim_(kv_dim), k_(dtype, kv_dim, kv_heads), v_(dtype, kv_dim, kv_heads) {}
  int64_t values_per_token() const override { return 2 * kv_dim_; }
  DType dtype() const override { return k_.dtype(); }
  int64_t reserved() const override { return k_.reserved(); }
  void reserve(int64_t n) override;
  int64_t kv_dim() const { return kv_dim_; }
  // [n_kv, reserved, d] each: the key (roped) and value of every token.
  CacheRows& k() { return k_; }
  CacheRows& v() { return v_; }
  const CacheRows& k() const { return k_; }
  const CacheRows& v() const { return v_; }

 private:
  int64_t kv_dim_;
  CacheRows k_, v_;
};

// The caches of every layer for one sequence, plus how many tokens they hold.
class KvCache {
 public:
  KvCache() = default;
  // max_tokens: the context limit (positions 0 .. max_tokens-1).
  KvCache(std::vector<std::unique_ptr<LayerCache>> layers, int64_t max_tokens);

  int64_t n_layers() const { return static_cast<int64_t>(layers_.size()); }
  LayerCache& layer(int64_t l) { return *layers_.at(static_cast<size_t>(l)); }
  const LayerCache& layer(int64_t l) const { return *layers_.at(static_cast<size_t>(l)); }

  int64_t size() const { return size_; }             // tokens cached
  int64_t max_tokens() const { return max_tokens_; }  // context limit
  // Makes room for n more tokens (throws mlar::Error past the context limit).
  void reserve_more(int64_t n);
  void advance(int64_t n) { size_ += n; }           // after a forward wrote n tokens
  void truncate(int64_t n) { size_ = n < size_ ? n : size_; }  // forget tokens >= n
  void clear() { size_ = 0; }

  int64_t bytes_per_token() const;  // over all layers, in each layer's stored dtype
  int64_t bytes_used() const { return size_ * bytes_per_token(); }
  int64_t bytes_reserved() const;
  int64_t bytes_at_capacity() const { return max_tokens_ * bytes_per_token(); }

 private:
  std::vector<std::unique_ptr<LayerCache>> layers_;
  int64_t size_ = 0, max_tokens_ = 0;
};

}  // namespace mlar
