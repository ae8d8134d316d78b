#include "runtime/kv_cache.h"

#include <algorithm>

#include "util/error.h"

namespace mlar {
void GqaLayerCache::reserve(int64_t n) {
  k_.reserve(n);
  v_.reserve(n);
}

KvCache::KvCache(std::vector<std::unique_ptr<LayerCache>> layers, int64_t max_tokens)
    : layers_(std::move(layers)), max_tokens_(max_tokens) {
  if (max_tokens <= 0) fail("KvCache: context limit must be positive, got {}", max_tokens);
}

void KvCache::reserve_more(int64_t n) {
  const int64_t need = size_ + n;
  if (need > max_tokens_)
    fail("context limit reached: {} cached + {} new tokens > {} positions", size_, n, max_tokens_);
  for (auto& l : layers_) {
    const int64_t have = l->reserved();
    if (need <= have) continue;
    // Geometric growth (at least 64 tokens, at most the context limit).
    l->reserve(std::min(max_tokens_, std::max({need, 2 * have, int64_t{64}})));
  }
}

int64_t KvCache::bytes_per_token() const {
  int64_t b = 0;
  for (const auto& l : layers_) b += l->bytes_per_token();
  return b;
}

int64_t KvCache::bytes_reserved() const {
  int64_t b = 0;
  for (const auto& l : layers_) b += l->bytes_reserved();
  return b;
}

}  // namespace mlar
