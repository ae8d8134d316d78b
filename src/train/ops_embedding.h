// Backward of the embedding lookup h[t] = table[ids[t]]: table rows accumulate the
// gradients of every token that read them.
#pragma once
#include <cstdint>

namespace mlar::train {

// dtable[ids[t], :] += dh[t, :] for t in [0, n). dtable: [rows, dim]; dh: [n, dim].
// Parallel over column blocks, tokens in order within each, so the sums do not
// depend on scheduling.
void embedding_backward(const int32_t* ids, const float* dh, float* dtable, int64_t n, int64_t dim);

}  // namespace mlar::train
