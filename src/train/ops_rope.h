// Backward of RoPE. The forward (ops::rope) rotates each coordinate pair of a head by
// R(p w_i); its Jacobian is that rotation, so the backward is the inverse rotation
// R(-p w_i) = R(p w_i)^T applied to the gradient, in either pairing layout.
#pragma once
#include <cstdint>

#include "ops/rope.h"

namespace mlar::train {

// In place on dx viewed as [n tokens, heads, d] exactly as ops::rope addresses x
// (head h of token t at dx + t * token_stride + h * head_stride; the first d values
// of each head). positions: [n]; inv_freq: [d/2].
void rope_backward(float* dx, int64_t n, int64_t heads, int64_t d, int64_t head_stride, int64_t token_stride,
                   const int64_t* positions, const float* inv_freq, ops::RopePairs pairs);

}  // namespace mlar::train
