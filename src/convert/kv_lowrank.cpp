#include "convert/kv_lowrank.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace mlar {
namespace {

constexpr KvMethod kMethods[] = {KvMethod::Pca, KvMethod::BkvPca, KvMethod::Svd, KvMethod::Attn};

// Relative floor on the metric's eigenvalues, so that L^-1 exists (directions the
// metric ignores still get reconstructed, with a tiny weight).
constexpr double kMetricFloor = 1e-6;

// PCA of E[y y^T], y = L^T z, with L = sqrt(M) given as (L, L^-1).
KvBasis weighted_pca(const la::Mat& Ezz, const la::Mat& L, const la::Mat& Linv) {
  const la::Mat Y = la::sandwich(L, Ezz);  // L symmetric: L^T E L
  const la::SymEig e = la::sym_eig(Y);
  KvBasis b;
  b.down = la::matmul(e.vectors, L, true, false);  // P^T L^T
  b.up = la::matmul(Linv, e.vectors);              // L^-T P
  b.energy = e.values;
  for (double& v : b.energy) v = std::max(v, 0.0);
  return b;
}

KvBasis metric_pca(const la::Mat& Ezz, const la::Mat& M) {
  const la::SymEig e = la::sym_eig(M);
  const double floor = std::max(e.values.front(), 1e-300) * kMetricFloor;
  la::Mat L, Linv;
  la::sym_sqrt(M, floor, &L, &Linv);
  return weighted_pca(Ezz, L, Linv);
}

}  // namespace

const char* kv_method_name(KvMethod m) {
  switch (m) {
    case KvMethod::Pca: return "pca";
    case KvMethod::BkvPca: return "bkv-pca";
    case KvMethod::Svd: return "svd";
    case KvMethod::Attn: return "attn";
  }
  return "?";
}

std::optional<KvMethod> kv_method_from_name(const std::string& name) {
  for (KvMethod m : kMethods)
    if (name == kv_method_name(m)) return m;
  return std::nullopt;
}

std::string kv_method_names() {
  std::string out;
  for (KvMethod m : kMethods) out += (out.empty() ? "" : ", ") + std::string(kv_method_name(m));
  return out;
}

KvBasis kv_basis(KvMethod method, const KvProblem& p) {
  const int64_t Z = p.wz.rows, K = p.key_rows;
  if (p.wz.cols != p.S.rows) fail("kv_basis: W_z has {} columns, S is {} x {}", p.wz.cols, p.S.rows, p.S.cols);
  if (method == KvMethod::Svd) {
    const la::Svd s = la::svd(p.wz);  // wz = U diag(s) V^T; U: [Z, k]
    KvBasis b;
    b.down = la::Mat(Z, Z);
    b.up = la::Mat(Z, Z);
    b.energy.assign(static_cast<size_t>(Z), 0.0);
    // Complete U to an orthonormal basis of R^Z when k < Z (extra directions carry nothing).
    la::Mat U = s.u;
    if (U.cols < Z) {
      const la::Mat P = la::Mat::identity(Z);
      la::Mat proj = la::matmul(U, U, false, true);  // U U^T
      la::Mat rest(Z, Z);
      for (int64_t i = 0; i < Z; ++i)
        for (int64_t j = 0; j < Z; ++j) rest(i, j) = P(i, j) - proj(i, j);
      const la::SymEig e = la::sym_eig(rest);
      la::Mat full(Z, Z);
      for (int64_t i = 0; i < Z; ++i) {
        for (int64_t k = 0; k < U.cols; ++k) full(i, k) = U(i, k);
        for (int64_t k = U.cols; k < Z; ++k) full(i, k) = e.vectors(i, k - U.cols);
      }
      U = std::move(full);
    }
    b.down = la::transpose(U);
    b.up = U;
    for (size_t k = 0; k < s.s.size(); ++k) b.energy[k] = s.s[k] * s.s[k];
    return b;
  }
  const la::Mat Ezz = la::sandwich(p.wz, p.S);  // [Z, Z]
  switch (method) {
    case KvMethod::Pca: return weighted_pca(Ezz, la::Mat::identity(Z), la::Mat::identity(Z));
    case KvMethod::BkvPca: {
      double ek = 0, ev = 0;
      for (int64_t i = 0; i < Z; ++i) (i < K ? ek : ev) += Ezz(i, i);
      const double a = (ek > 0 && ev > 0) ? std::sqrt(ev / ek) : 1.0;
      la::Mat L = la::Mat::identity(Z), Linv = la::Mat::identity(Z);
      for (int64_t i = 0; i < K; ++i) {
        L(i, i) = a;
        Linv(i, i) = 1.0 / a;
      }
      return weighted_pca(Ezz, L, Linv);
    }
    case KvMethod::Attn: {
      if (p.key_metric.rows != K || p.value_metric.rows != Z - K)
        fail("kv_basis: attn needs key and value metrics of {} and {} rows", K, Z - K);
      la::Mat M(Z, Z);
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < K; ++j) M(i, j) = p.key_metric(i, j);
      for (int64_t i = 0; i < Z - K; ++i)
        for (int64_t j = 0; j < Z - K; ++j) M(K + i, K + j) = p.value_metric(i, j);
      return metric_pca(Ezz, M);
    }
    case KvMethod::Svd: break;
  }
  fail("kv_basis: unknown method");
}

la::Mat kv_down(const KvBasis& b, int64_t r) { return la::rows_of(b.down, 0, r); }
la::Mat kv_up(const KvBasis& b, int64_t r) { return la::cols_of(b.up, 0, r); }

}  // namespace mlar
