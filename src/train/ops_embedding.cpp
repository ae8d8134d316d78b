#include "train/ops_embedding.h"

#include "ops/parallel.h"

namespace mlar::train {

void embedding_backward(const int32_t* ids, const float* dh, float* dtable, int64_t n, int64_t dim) {
  ops::parallel_for(dim, ops::pick_grain(dim, n, 1 << 16, 16), [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < n; ++t) {
      float* row = dtable + static_cast<int64_t>(ids[t]) * dim;
      const float* g = dh + t * dim;
      for (int64_t c = c0; c < c1; ++c) row[c] += g[c];
    }
  });
}

}  // namespace mlar::train
