// The SwiGLU gate of a Llama MLP.
#pragma once
#include <cstdint>

namespace mlar::ops {

// out[i] = silu(gate[i]) * up[i], silu(z) = z / (1 + exp(-z)), for i in [0, n).
// out may equal gate or up.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

}  // namespace mlar::ops
