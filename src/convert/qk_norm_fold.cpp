#include "convert/qk_norm_fold.h"

#include <cmath>

#include "util/error.h"

namespace mlar {
namespace {

// rows [h d, (h+1) d) of the augmented projection m times gamma (.) and `scale`.
void scale_head(la::Mat& m, int64_t h, int64_t d, const Tensor& gamma, double scale) {
  for (int64_t i = 0; i < d; ++i) {
    double* row = m.row(h * d + i);
    const double f = static_cast<double>(gamma.ptr()[i]) * scale;
    for (int64_t k = 0; k < m.cols; ++k) row[k] *= f;
  }
}

// 1/sqrt(E[mean((W~ [x;1])^2)] + eps) over the d rows of head h of `w` (augmented).
double calibrated_scale(const la::Mat& w, int64_t h, int64_t d, const la::Mat& S, double eps) {
  const la::Mat cov = la::sandwich(la::rows_of(w, h * d, d), S);  // E[q_h q_h^T]
  double tr = 0;
  for (int64_t i = 0; i < d; ++i) tr += cov(i, i);
  return 1.0 / std::sqrt(std::max(tr, 0.0) / static_cast<double>(d) + eps);
}

}  // namespace

const char* qk_norm_mode_name(QkNormMode m) {
  switch (m) {
    case QkNormMode::Auto: return "auto";
    case QkNormMode::Cached: return "cached";
    case QkNormMode::Calibrated: return "calibrated";
  }
  return "?";
}

std::optional<QkNormMode> qk_norm_mode_from_name(const std::string& s) {
  for (QkNormMode m : {QkNormMode::Auto, QkNormMode::Cached, QkNormMode::Calibrated})
    if (s == qk_norm_mode_name(m)) return m;
  return std::nullopt;
}

LinearQk linear_qk_layer(const ModelConfig& c, const LayerWeights& src, const la::Mat& S) {
  if (!c.qk_norm) fail("linear_qk_layer: the model has no q/k norms");
  const int64_t D = c.hidden_size, d = c.head_dim;
  const double eps = c.rms_norm_eps;
  const Tensor gq = src.q_norm.to_f32(), gk = src.k_norm.to_f32();
  la::Mat wq = la::augmented(src.wq, src.bq), wk = la::augmented(src.wk, src.bk);
  LinearQk out;
  for (int64_t h = 0; h < c.num_heads; ++h) {
    out.tau.push_back(calibrated_scale(wq, h, d, S, eps));
    scale_head(wq, h, d, gq, out.tau.back());
  }
  for (int64_t j = 0; j < c.num_kv_heads; ++j) {
    out.sigma.push_back(calibrated_scale(wk, j, d, S, eps));
    scale_head(wk, j, d, gk, out.sigma.back());
  }
  out.layer = src;
  out.layer.wq = la::to_tensor(wq, D);
  out.layer.wk = la::to_tensor(wk, D);
  if (!src.bq.empty()) out.layer.bq = la::column_tensor(wq, D, false);
  if (!src.bk.empty()) out.layer.bk = la::column_tensor(wk, D, false);
  out.layer.q_norm = TypedTensor{};
  out.layer.k_norm = TypedTensor{};
  return out;
}

void add_score_scales(MlaLayerWeights& w, const ModelConfig& c, const LayerWeights& src, const LinearQk& lin) {
  const int64_t H = c.num_heads, g = c.group_size();
  if (w.wq.empty() || w.wq.dim(0) % H != 0) fail("add_score_scales: a full-rank W_q of whole heads is needed");
  const int64_t qw = w.wq.dim(0) / H, cols = w.wq.dim(1);
  float* q = w.wq.mutable_f32();
  float* b = w.bq.empty() ? nullptr : w.bq.mutable_f32();
  for (int64_t h = 0; h < H; ++h) {
    const double f = 1.0 / (lin.tau[static_cast<size_t>(h)] * lin.sigma[static_cast<size_t>(h / g)]);
    for (int64_t i = h * qw; i < (h + 1) * qw; ++i) {
      for (int64_t k = 0; k < cols; ++k) q[i * cols + k] = static_cast<float>(q[i * cols + k] * f);
      if (b) b[i] = static_cast<float>(b[i] * f);
    }
  }
  w.wq_scale = src.wq;
  w.wk_scale = src.wk;
}

}  // namespace mlar
