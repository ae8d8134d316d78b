#include "train/adamw.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "train/ops_adamw.h"
#include "train/ops_loss.h"

namespace mlar::train {

AdamW::AdamW(std::vector<Param> params, AdamWOptions opts) : params_(std::move(params)), opts_(opts) {
  for (const auto& p : params_) {
    m_.emplace_back(p.value->shape);
    v_.emplace_back(p.value->shape);
  }
}

void AdamW::step(double lr) {
  ++t_;
  AdamWHyper h;
  h.lr = lr;
  h.beta1 = opts_.beta1;
  h.beta2 = opts_.beta2;
  h.eps = opts_.eps;
  h.step = t_;
  for (size_t i = 0; i < params_.size(); ++i) {
    h.weight_decay = params_[i].decay ? opts_.weight_decay : 0.0;
    adamw_update(params_[i].value->ptr(), params_[i].grad->ptr(), m_[i].ptr(), v_[i].ptr(), params_[i].value->numel(), h);
  }
}

double clip_grad_norm(const std::vector<Param>& params, double max_norm) {
  double ss = 0;
  for (const auto& p : params) ss += sum_squares(p.grad->ptr(), p.grad->numel());
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float s = static_cast<float>(max_norm / norm);
    for (const auto& p : params) scale_buffer(p.grad->ptr(), s, p.grad->numel());
  }
  return norm;
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t span = total - warmup;
  if (span <= 1) return peak;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(span - 1);  // 0 .. 1
  const double lo = peak * min_ratio;
  return lo + 0.5 * (peak - lo) * (1.0 + std::cos(std::numbers::pi * std::min(1.0, progress)));
}

}  // namespace mlar::train
