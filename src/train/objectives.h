// The losses of one training batch and their gradients, per fine-tuning mode.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "train/train_model.h"

namespace mlar::train {

struct StepLoss {
  double loss = 0;                // what the update minimises
  double ce = 0;                  // e2e: mean next-token cross-entropy (nats)
  double kl = 0;                  // e2e: mean KL(teacher || student) (nats), 0 without teacher
  std::vector<double> layer_mse;  // layerwise: MSE of each block's output
  std::vector<double> layer_rel;  // layerwise: squared error / squared norm of the teacher's output
};

// e2e: loss = CE(student(inputs), targets) + kl_weight * KL(teacher || student)
// (means over tokens; KL only when teacher is non-null and kl_weight > 0).
// Adds the gradient into the non-empty tensors of grad.
StepLoss e2e_loss(const TrainModel& student, const TrainModel* teacher, double kl_weight,
                  std::span<const int32_t> inputs, std::span<const int32_t> targets, const BatchShape& b,
                  ModelWeights& grad);

// layerwise: for every layer l, x = rmsnorm(alpha h_l^teacher, student attn_norm_l), and
// loss_l = mean((Attn_l^student(x) / alpha - Attn_l^teacher output)^2); loss = mean_l loss_l.
// alpha = sqrt(student eps / teacher eps): 1 unless the student is a DeepSeek-V3 export
// whose residual stream export rescaled to run every norm at eps 1e-6.
// Adds the gradient into grad (attention tensors; attn_norm when it has a gradient).
StepLoss layerwise_loss(const TrainModel& student, const TrainModel& teacher, std::span<const int32_t> inputs,
                        const BatchShape& b, ModelWeights& grad);

}  // namespace mlar::train
