#include "runtime/mla_cache.h"

#include <algorithm>

namespace mlar {

void MlaLayerCache::reserve(int64_t n) {
  const int64_t have = reserved();
  if (n <= have) return;
  Tensor grown({n, row_stride()});
  if (have > 0) std::copy_n(rows_.ptr(), have * row_stride(), grown.ptr());
  rows_ = std::move(grown);
}

}  // namespace mlar
