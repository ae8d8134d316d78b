// Per-row scoring of logits on the device (evaluation and greedy decoding).
#pragma once
#include <cstdint>

namespace mlar::cuda {

// nll[r] = log(sum_c exp(logits[r, c])) - logits[r, targets[r]] in double (the max
// subtracted first), r < n; rows `stride` floats apart. nll: [n] doubles (device).
void row_nll(const float* logits, int64_t stride, int64_t n, int64_t vocab, const int32_t* targets, double* nll);
// out[r] = the first index of the largest logit of row r (device int32 [n]).
void argmax_rows(const float* logits, int64_t stride, int64_t n, int64_t vocab, int32_t* out);

}  // namespace mlar::cuda
