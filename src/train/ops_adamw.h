// One AdamW update of a parameter buffer (decoupled weight decay, bias correction):
//   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
//   p -= lr * ( (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd * p )
// with t the 1-based step count. Per element, in double, stored as float.
#pragma once
#include <cstdint>

namespace mlar::train {

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.0;  // applied as lr * wd * p (decoupled from the gradient)
  int64_t step = 1;           // t >= 1, for the bias corrections
};

// p, g, m, v: [n]. g is read only.
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWHyper& h);

// x[i] *= s for i in [0, n).
void scale_buffer(float* x, float s, int64_t n);

}  // namespace mlar::train
