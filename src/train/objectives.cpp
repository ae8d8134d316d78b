#include "train/objectives.h"

#include <algorithm>
#include <cmath>

#include "train/ops_loss.h"
#include "train/ops_rmsnorm.h"
#include "util/error.h"

namespace mlar::train {

StepLoss e2e_loss(const TrainModel& student, const TrainModel* teacher, double kl_weight,
                  std::span<const int32_t> inputs, std::span<const int32_t> targets, const BatchShape& b,
                  ModelWeights& grad) {
  const int64_t N = b.rows(), V = student.model().config.vocab_size;
  Activations sa;
  student.forward(inputs, b, sa);
  std::vector<float> dlogits(static_cast<size_t>(N * V));  // [rows, V]
  StepLoss r;
  int64_t scored = 0;
  for (int32_t t : targets) scored += t >= 0;
  if (scored == 0) fail("train: a batch without targets");
  const double inv = 1.0 / static_cast<double>(scored);
  r.ce = cross_entropy(sa.logits.data(), targets.data(), N, V, dlogits.data(), inv) * inv;
  if (teacher && kl_weight > 0) {
    Activations ta;
    teacher->forward(inputs, b, ta);
    r.kl = kl_divergence(ta.logits.data(), sa.logits.data(), targets.data(), N, V, dlogits.data(), kl_weight * inv) *
           inv;
  }
  r.loss = r.ce + kl_weight * r.kl;
  student.backward(sa, dlogits.data(), grad);
  return r;
}

StepLoss layerwise_loss(const TrainModel& student, const TrainModel& teacher, std::span<const int32_t> inputs,
                        const BatchShape& b, ModelWeights& grad) {
  const ModelConfig& c = student.model().config;
  const int64_t N = b.rows(), D = c.hidden_size, L = c.num_layers;
  const float eps = static_cast<float>(c.rms_norm_eps);
  // A student whose residual stream is the teacher's times alpha with eps x alpha^2 (a
  // DeepSeek-V3 export of a model with another eps: export rescales the stream so that
  // every norm runs at eps 1e-6) computes the same function; its blocks read
  // alpha h^teacher and their outputs are compared in the teacher's units (/ alpha).
  const double alpha = std::sqrt(c.rms_norm_eps / teacher.model().config.rms_norm_eps);
  const bool scaled = alpha != 1.0;
  Activations ta;
  teacher.forward(inputs, b, ta);
  std::vector<float> x(static_cast<size_t>(N * D)), y(x.size()), dy(x.size()), dx(x.size());  // [rows, D] each
  std::vector<float> hs(scaled ? x.size() : 0);  // [rows, D]: alpha h^teacher
  StepLoss r;
  for (int64_t l = 0; l < L; ++l) {
    const LayerActivations& tl = ta.layers[static_cast<size_t>(l)];
    const LayerWeights& w = student.model().weights.layers[static_cast<size_t>(l)];
    LayerWeights& g = grad.layers[static_cast<size_t>(l)];
    const float* h = tl.h_in.data();
    if (scaled) {
      for (size_t i = 0; i < hs.size(); ++i) hs[i] = static_cast<float>(alpha * tl.h_in[i]);
      h = hs.data();
    }
    rmsnorm_forward(h, w.attn_norm.ptr(), x.data(), {N, D, 0, 0, eps});
    const AttentionBlock& block = student.attention(l);
    auto state = block.forward(x.data(), b, y.data());
    if (scaled)
      for (float& v : y) v = static_cast<float>(v / alpha);
    const double numel = static_cast<double>(N * D);
    const double se = squared_error(y.data(), tl.attn_out.data(), N * D, dy.data(), 1.0 / (numel * L));
    if (scaled)
      for (float& v : dy) v = static_cast<float>(v / alpha);
    r.layer_mse.push_back(se / numel);
    r.layer_rel.push_back(se / std::max(1e-30, sum_squares(tl.attn_out.data(), N * D)));
    r.loss += se / numel / static_cast<double>(L);
    const bool norm = !g.attn_norm.empty();
    block.backward(x.data(), *state, b, dy.data(), norm ? dx.data() : nullptr, g);
    if (norm) rmsnorm_backward(h, w.attn_norm.ptr(), dx.data(), nullptr, false, g.attn_norm.ptr(), {N, D, 0, 0, eps});
  }
  return r;
}

}  // namespace mlar::train
