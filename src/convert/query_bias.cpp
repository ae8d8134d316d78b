#include "convert/query_bias.h"

#include <cmath>

#include "util/error.h"

namespace mlar {

const char* query_bias_name(QueryBias q) {
  switch (q) {
    case QueryBias::Auto: return "auto";
    case QueryBias::Keep: return "keep";
    case QueryBias::Fold: return "fold";
    case QueryBias::Mean: return "mean";
    case QueryBias::Drop: return "drop";
  }
  return "?";
}

std::optional<QueryBias> query_bias_from_name(const std::string& s) {
  for (QueryBias q : {QueryBias::Auto, QueryBias::Keep, QueryBias::Fold, QueryBias::Mean, QueryBias::Drop})
    if (s == query_bias_name(q)) return q;
  return std::nullopt;
}

std::vector<double> bias_fold_direction(const la::Mat& S, QueryBias mode, double ridge) {
  const int64_t D = S.rows - 1;
  if (D < 1 || S.cols != S.rows) fail("query bias: second moment of {} x {}", S.rows, S.cols);
  std::vector<double> m(static_cast<size_t>(D)), u(static_cast<size_t>(D), 0.0);
  for (int64_t i = 0; i < D; ++i) m[static_cast<size_t>(i)] = S(i, D);
  if (mode == QueryBias::Drop) return u;
  if (mode == QueryBias::Mean) {
    double mm = 0;
    for (double v : m) mm += v * v;
    if (mm > 0)
      for (int64_t i = 0; i < D; ++i) u[static_cast<size_t>(i)] = m[static_cast<size_t>(i)] / mm;
    return u;
  }
  if (mode != QueryBias::Fold) fail("query bias: no fold direction for mode {}", query_bias_name(mode));
  // u = (S_xx + lambda I)^-1 m through the eigendecomposition of S_xx.
  const la::Mat Sxx = la::cols_of(la::rows_of(S, 0, D), 0, D);
  const double lambda = std::max(la::trace(Sxx) / static_cast<double>(D), 1e-300) * ridge;
  const la::SymEig e = la::sym_eig(Sxx);
  for (int64_t k = 0; k < D; ++k) {
    double proj = 0;  // v_k . m
    for (int64_t i = 0; i < D; ++i) proj += e.vectors(i, k) * m[static_cast<size_t>(i)];
    const double coef = proj / (std::max(e.values[static_cast<size_t>(k)], 0.0) + lambda);
    for (int64_t i = 0; i < D; ++i) u[static_cast<size_t>(i)] += coef * e.vectors(i, k);
  }
  return u;
}

double bias_residual(const la::Mat& S, const std::vector<double>& u) {
  const int64_t D = S.rows - 1;
  if (static_cast<int64_t>(u.size()) != D) fail("query bias: direction of {} values for inputs of {}", u.size(), D);
  double um = 0, usu = 0;
  for (int64_t i = 0; i < D; ++i) {
    const double ui = u[static_cast<size_t>(i)];
    if (ui == 0) continue;
    um += ui * S(i, D);
    double row = 0;
    for (int64_t j = 0; j < D; ++j) row += S(i, j) * u[static_cast<size_t>(j)];
    usu += ui * row;
  }
  return S(D, D) - 2 * um + usu;  // S(D, D) = E[1] = 1
}

namespace {

// W += b u^T, b removed.
void fold_bias(TypedTensor& W, TypedTensor& bias, const std::vector<double>& u, const char* what) {
  const int64_t out = W.dim(0), D = W.dim(1);
  if (static_cast<int64_t>(u.size()) != D || bias.numel() != out)
    fail("{}: weight of {} x {}, bias of {}, direction of {}", what, out, D, bias.numel(), u.size());
  const Tensor b = bias.to_f32();
  for (int64_t o = 0; o < out; ++o) {
    const double bo = b.data[static_cast<size_t>(o)];
    if (bo == 0) continue;
    float* row = W.row(o);
    for (int64_t i = 0; i < D; ++i) row[i] = static_cast<float>(row[i] + bo * u[static_cast<size_t>(i)]);
  }
  bias = TypedTensor{};
}

}  // namespace

void fold_query_bias(MlaLayerWeights& w, const std::vector<double>& u) {
  if (w.bq.empty()) return;
  if (w.wq.empty()) fail("query bias: no full-rank W_q to fold the bias into (q_lora: refit q_b instead)");
  fold_bias(w.wq, w.bq, u, "query bias");
}

bool fold_kv_biases(MlaLayerWeights& w, const std::vector<double>& u) {
  bool folded = false;
  if (any_nonzero(w.b_dkv)) fold_bias(w.w_dkv, w.b_dkv, u, "latent bias"), folded = true;
  if (any_nonzero(w.b_kr)) fold_bias(w.w_kr, w.b_kr, u, "rope-key bias"), folded = true;
  w.b_dkv = TypedTensor{};
  w.b_kr = TypedTensor{};
  return folded;
}

bool any_nonzero(const TypedTensor& t) {
  if (t.empty()) return false;
  const Tensor f = t.to_f32();
  for (float x : f.data)
    if (x != 0.0f) return true;
  return false;
}

}  // namespace mlar
