// Backward of the SwiGLU gate out = silu(g) * u, silu(g) = g * sigmoid(g):
//   dg = dout * u * sigmoid(g) * (1 + g * (1 - sigmoid(g)))
//   du = dout * silu(g)
#pragma once
#include <cstdint>

namespace mlar::train {

// gate, up, dout, dgate, dup: [n]. dgate / dup overwritten (may alias dout).
void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n);

}  // namespace mlar::train
