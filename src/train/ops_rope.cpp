#include "train/ops_rope.h"

#include <cstddef>
#include <vector>

namespace mlar::train {

void rope_backward(float* dx, int64_t n, int64_t heads, int64_t d, int64_t head_stride, int64_t token_stride,
                   const int64_t* positions, const float* inv_freq, ops::RopePairs pairs) {
  // R(-a) = R(a)^T: the forward op at negated positions (angles in double, so the
  // cosines are the forward's and the sines exactly their negatives).
  std::vector<int64_t> neg(static_cast<size_t>(n));  // [n]
  for (int64_t t = 0; t < n; ++t) neg[static_cast<size_t>(t)] = -positions[t];
  ops::rope(dx, n, heads, d, head_stride, token_stride, neg.data(), inv_freq, pairs);
}

}  // namespace mlar::train
