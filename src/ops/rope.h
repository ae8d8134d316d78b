// Rotary position embedding (MLA.md §1): rotates d/2 coordinate pairs of every head,
// pair i of a token at position p by the angle p * inv_freq[i].
#pragma once
#include <cstdint>

namespace mlar::ops {

// Which coordinates form pair i of a head of size d.
enum class RopePairs {
  Half,         // (i, i + d/2)  "NeoX"
  Interleaved,  // (2i, 2i + 1)  "GPT-J"
};

// In place on x viewed as [n tokens, heads, d]: the head h of token t starts at
// x + t * token_stride + h * head_stride and its first d values are rotated (so a
// rope part inside wider rows or heads can be addressed). positions: [n];
// inv_freq: [d/2]. Angles and their sin/cos are computed in double.
void rope(float* x, int64_t n, int64_t heads, int64_t d, int64_t head_stride, int64_t token_stride,
          const int64_t* positions, const float* inv_freq, RopePairs pairs);

// Contiguous form: x is [n, heads, d].
inline void rope(float* x, int64_t n, int64_t heads, int64_t d, const int64_t* positions, const float* inv_freq,
                 RopePairs pairs) {
  rope(x, n, heads, d, d, heads * d, positions, inv_freq, pairs);
}

}  // namespace mlar::ops
