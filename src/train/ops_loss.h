// Losses over rows of logits or activations, with their gradients. Every value is
// returned as a sum (double) so callers choose the normalisation through grad_scale.
#pragma once
#include <cstdint>

namespace mlar::train {

// Next-token cross-entropy: sum over rows r with targets[r] >= 0 of
//   -log softmax(logits[r])[targets[r]]   (log-sum-exp in double).
// When dlogits is non-null it is overwritten with grad_scale * (softmax - onehot)
// (zero rows for ignored targets). logits, dlogits: [n, V]; targets: [n].
double cross_entropy(const float* logits, const int32_t* targets, int64_t n, int64_t V, float* dlogits,
                     double grad_scale);

// KL(teacher || student) summed over rows r with mask == null or mask[r] >= 0:
//   sum_v p_t(v) (log p_t(v) - log p_s(v)),  p = softmax(logits) (in double).
// When dlogits is non-null, grad_scale * (p_s - p_t) is ADDED to it (the gradient
// w.r.t. the student's logits). teacher, student, dlogits: [n, V]; mask: [n] or null.
double kl_divergence(const float* teacher, const float* student, const int32_t* mask, int64_t n, int64_t V,
                     float* dlogits, double grad_scale);

// Squared error sum_i (y[i] - target[i])^2 over [0, n) (in double). When dy is
// non-null it is overwritten with grad_scale * 2 * (y - target).
double squared_error(const float* y, const float* target, int64_t n, float* dy, double grad_scale);

// sum_i x[i]^2 over [0, n), in double.
double sum_squares(const float* x, int64_t n);

}  // namespace mlar::train
