// AdamW over a set of parameters (ops_adamw.h per tensor), global-norm gradient
// clipping, and the learning-rate schedule (linear warmup, then cosine decay).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"
#include "train/params.h"

namespace mlar::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.0;  // decoupled; only on parameters with Param::decay (matrices)
};

class AdamW {
 public:
  // Moments start at zero, one pair per parameter.
  AdamW(std::vector<Param> params, AdamWOptions opts);

  // One update with learning rate lr from the parameters' current gradients.
  void step(double lr);

  int64_t steps() const { return t_; }  // updates made
  const std::vector<Param>& params() const { return params_; }
  // First and second moments, parallel to params() (for checkpoints).
  std::vector<Tensor>& first_moments() { return m_; }
  std::vector<Tensor>& second_moments() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  std::vector<Param> params_;
  AdamWOptions opts_;
  std::vector<Tensor> m_, v_;
  int64_t t_ = 0;
};

// Global L2 norm of every parameter's gradient (sums in double). When max_norm > 0
// and the norm exceeds it, every gradient is scaled by max_norm / norm. Returns the
// norm before clipping.
double clip_grad_norm(const std::vector<Param>& params, double max_norm);

// Learning rate of update `step` (0-based) of `total`: peak * (step + 1) / warmup
// during the first `warmup` updates, then cosine decay from peak to peak * min_ratio
// at the last update.
struct LrSchedule {
  double peak = 1e-3;
  double min_ratio = 0.1;
  int64_t warmup = 0;
  int64_t total = 1;
  double at(int64_t step) const;
};

}  // namespace mlar::train
