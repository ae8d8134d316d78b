// The numerical building blocks of the extend retrofit: LAPACKE wrappers, streamed
// second moments, the reservoir, the low-rank bases, the rank allocation.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <random>

#include "convert/calib_stats.h"
#include "convert/kv_lowrank.h"
#include "convert/linalg.h"
#include "convert/rank_alloc.h"
#include "util/error.h"

namespace mlar {
namespace {

la::Mat random_mat(int64_t r, int64_t c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n;
  la::Mat m(r, c);
  for (double& v : m.a) v = n(rng);
  return m;
}

double max_diff(const la::Mat& a, const la::Mat& b) {
  double m = 0;
  for (size_t i = 0; i < a.a.size(); ++i) m = std::max(m, std::abs(a.a[i] - b.a[i]));
  return m;
}

TEST(Linalg, SymEigReconstructsDescendingWithFixedSigns) {
  const la::Mat X = random_mat(9, 6, 1);
  const la::Mat S = la::matmul(X, X, true, false);  // [6, 6] PSD
  const la::SymEig e = la::sym_eig(S);
  for (size_t k = 1; k < e.values.size(); ++k) EXPECT_GE(e.values[k - 1], e.values[k]);
  la::Mat VL = e.vectors;
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t k = 0; k < 6; ++k) VL(i, k) *= e.values[static_cast<size_t>(k)];
  EXPECT_LT(max_diff(la::matmul(VL, e.vectors, false, true), S), 1e-10);
  for (int64_t k = 0; k < 6; ++k) {  // entry of largest magnitude positive
    int64_t arg = 0;
    for (int64_t i = 1; i < 6; ++i)
      if (std::abs(e.vectors(i, k)) > std::abs(e.vectors(arg, k))) arg = i;
    EXPECT_GT(e.vectors(arg, k), 0);
  }
}

TEST(Linalg, HermEigMatchesTheRealRepresentation) {
  const int64_t n = 4;
  const la::Mat A = random_mat(n, 7, 2), B = random_mat(n, 7, 3);  // Z = A + iB, H = Z Z^H
  std::vector<std::complex<double>> H(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < 7; ++t)
        H[i * n + j] += std::complex<double>(A(i, t), B(i, t)) * std::conj(std::complex<double>(A(j, t), B(j, t)));
  const la::HermEig e = la::herm_eig(H, n);
  for (int64_t k = 0; k < n; ++k) {  // H v = l v
    for (int64_t i = 0; i < n; ++i) {
      std::complex<double> hv = 0;
      for (int64_t j = 0; j < n; ++j) hv += H[i * n + j] * e.vectors[j * n + k];
      EXPECT_LT(std::abs(hv - e.values[k] * e.vectors[i * n + k]), 1e-9);
    }
  }
  // The real symmetric representation [[Re, -Im], [Im, Re]] has every value twice.
  la::Mat R(2 * n, 2 * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      R(i, j) = R(n + i, n + j) = H[i * n + j].real();
      R(i, n + j) = -H[i * n + j].imag();
      R(n + i, j) = H[i * n + j].imag();
    }
  const la::SymEig r = la::sym_eig(R);
  for (int64_t k = 0; k < n; ++k) EXPECT_NEAR(r.values[2 * k], e.values[k], 1e-9);
}

TEST(Linalg, SvdAndSqrt) {
  const la::Mat A = random_mat(5, 8, 4);
  const la::Svd s = la::svd(A);
  la::Mat US = s.u;
  for (int64_t i = 0; i < US.rows; ++i)
    for (int64_t k = 0; k < US.cols; ++k) US(i, k) *= s.s[static_cast<size_t>(k)];
  EXPECT_LT(max_diff(la::matmul(US, s.vt), A), 1e-10);
  const la::Mat S = la::matmul(A, A, false, true);
  la::Mat r, ri;
  la::sym_sqrt(S, 1e-12, &r, &ri);
  EXPECT_LT(max_diff(la::matmul(r, r), S), 1e-9);
  EXPECT_LT(max_diff(la::matmul(r, ri), la::Mat::identity(5)), 1e-9);
}

TEST(CalibStats, SecondMomentIsStreamedExactly) {
  const int64_t D = 5, n = 300;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g;
  std::vector<float> x(n * D);
  for (float& v : x) v = g(rng);
  SecondMoment once(D), chunks(D);
  once.add(x.data(), n);
  for (int64_t t = 0; t < n; t += 37) chunks.add(x.data() + t * D, std::min<int64_t>(37, n - t));
  const la::Mat a = once.mean(), b = chunks.mean();
  EXPECT_EQ(once.count(), n);
  EXPECT_LT(max_diff(a, b), 1e-12);
  // Against the definition E[[x;1][x;1]^T].
  for (int64_t i = 0; i <= D; ++i)
    for (int64_t j = 0; j <= D; ++j) {
      double s = 0;
      for (int64_t t = 0; t < n; ++t) s += (i < D ? x[t * D + i] : 1.0) * (j < D ? x[t * D + j] : 1.0);
      EXPECT_NEAR(a(i, j), s / n, 1e-9);
    }
  EXPECT_THROW(SecondMoment(D).mean(), Error);
}

TEST(CalibStats, ReservoirKeepsAFixedSizeUniformSample) {
  Reservoir r(2, 50);
  std::vector<float> x(2000 * 2);
  for (int i = 0; i < 2000; ++i) x[2 * i] = x[2 * i + 1] = static_cast<float>(i);
  for (int t = 0; t < 2000; t += 100) r.add(x.data() + 2 * t, 100);
  EXPECT_EQ(r.size(), 50);
  double mean = 0;
  for (int64_t i = 0; i < r.size(); ++i) mean += r.row(i)[0];
  mean /= 50;
  EXPECT_GT(mean, 600);  // a uniform sample of 0..1999, not the first rows
  EXPECT_LT(mean, 1400);
}

// Every method's full basis reconstructs z exactly (B A = I), and truncations are
// ordered by the energy they keep.
TEST(KvLowrank, FullBasisIsExactAndEnergiesDescend) {
  const int64_t D = 12, Z = 8;
  KvProblem p;
  p.wz = random_mat(Z, D + 1, 6);
  const la::Mat X = random_mat(40, D + 1, 7);
  p.S = la::matmul(X, X, true, false);
  for (double& v : p.S.a) v /= 40;
  p.key_rows = 4;
  const la::Mat Mk = random_mat(4, 4, 8), Mv = random_mat(4, 4, 9);
  p.key_metric = la::matmul(Mk, Mk, false, true);
  p.value_metric = la::matmul(Mv, Mv, false, true);
  for (KvMethod m : {KvMethod::Pca, KvMethod::BkvPca, KvMethod::Svd, KvMethod::Attn}) {
    const KvBasis b = kv_basis(m, p);
    EXPECT_LT(max_diff(la::matmul(kv_up(b, Z), kv_down(b, Z)), la::Mat::identity(Z)), 1e-8) << kv_method_name(m);
    for (size_t k = 1; k < b.energy.size(); ++k) EXPECT_GE(b.energy[k - 1] + 1e-12, b.energy[k]) << kv_method_name(m);
  }
  // PCA keeps the most energy of z at every rank.
  const la::Mat Ezz = la::sandwich(p.wz, p.S);
  auto kept = [&](KvMethod m, int64_t r) {
    const KvBasis b = kv_basis(m, p);
    const la::Mat P = la::matmul(kv_up(b, r), kv_down(b, r));
    const la::Mat E = la::sandwich(P, Ezz);
    double err = 0;  // E|z - P z|^2 = tr(Ezz) - 2 tr(P Ezz) + tr(P Ezz P^T)
    err = la::trace(Ezz) - 2 * la::trace(la::matmul(P, Ezz)) + la::trace(E);
    return err;
  };
  for (int64_t r = 1; r < Z; ++r) {
    EXPECT_LE(kept(KvMethod::Pca, r), kept(KvMethod::BkvPca, r) + 1e-9);
    EXPECT_LE(kept(KvMethod::Pca, r), kept(KvMethod::Attn, r) + 1e-9);
  }
}

TEST(RankAlloc, EnergySpreadsTheTotal) {
  // Layer 0's spectrum is flat, layer 1's is concentrated: layer 0 needs more rank.
  const std::vector<std::vector<double>> e = {{1, 1, 1, 1, 1, 1}, {10, 0.1, 0.01, 0, 0, 0}};
  const auto r = allocate_ranks_by_energy(3, e, 6);
  EXPECT_EQ(r[0] + r[1], 6);
  EXPECT_GT(r[0], r[1]);
  EXPECT_GE(r[1], 1);
  const auto capped = allocate_ranks_by_energy(6, e, 6);
  EXPECT_EQ(capped, (std::vector<int64_t>{6, 6}));
}

}  // namespace
}  // namespace mlar
