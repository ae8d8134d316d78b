#include "convert/linalg.h"

#include <complex>
// LAPACKE's complex types as std::complex (lapack.h honours predefined types).
#define lapack_complex_float std::complex<float>
#define lapack_complex_double std::complex<double>
#include <lapacke.h>
// after lapacke.h: OpenBLAS's headers would define the C99 complex type first
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace mlar::la {

Mat Mat::identity(int64_t n) {
  Mat I(n, n);
  for (int64_t i = 0; i < n; ++i) I(i, i) = 1.0;
  return I;
}

Mat matmul(const Mat& A, const Mat& B, bool ta, bool tb) {
  const int64_t m = ta ? A.cols : A.rows, k = ta ? A.rows : A.cols;
  const int64_t k2 = tb ? B.cols : B.rows, n = tb ? B.rows : B.cols;
  if (k != k2) fail("la::matmul: inner dimensions {} and {} differ", k, k2);
  Mat C(m, n);
  if (m == 0 || n == 0 || k == 0) return C;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0, A.a.data(), static_cast<int>(A.cols), B.a.data(),
              static_cast<int>(B.cols), 0.0, C.a.data(), static_cast<int>(n));
  return C;
}

Mat transpose(const Mat& A) {
  Mat T(A.cols, A.rows);
  for (int64_t i = 0; i < A.rows; ++i)
    for (int64_t j = 0; j < A.cols; ++j) T(j, i) = A(i, j);
  return T;
}

Mat sandwich(const Mat& A, const Mat& B) {
  Mat out = matmul(matmul(A, B), A, false, true);
  symmetrize(out);
  return out;
}

Mat rows_of(const Mat& A, int64_t r0, int64_t n) {
  Mat R(n, A.cols);
  std::copy(A.row(r0), A.row(r0) + n * A.cols, R.a.begin());
  return R;
}

Mat cols_of(const Mat& A, int64_t c0, int64_t n) {
  Mat C(A.rows, n);
  for (int64_t i = 0; i < A.rows; ++i) std::copy(A.row(i) + c0, A.row(i) + c0 + n, C.row(i));
  return C;
}

void symmetrize(Mat& A) {
  for (int64_t i = 0; i < A.rows; ++i)
    for (int64_t j = i + 1; j < A.cols; ++j) {
      const double v = 0.5 * (A(i, j) + A(j, i));
      A(i, j) = A(j, i) = v;
    }
}

double trace(const Mat& A) {
  double t = 0;
  for (int64_t i = 0; i < std::min(A.rows, A.cols); ++i) t += A(i, i);
  return t;
}

SymEig sym_eig(const Mat& S) {
  if (S.rows != S.cols) fail("la::sym_eig: matrix is {} x {}, not square", S.rows, S.cols);
  const int64_t n = S.rows;
  SymEig e;
  if (n == 0) return e;
  Mat a = S;
  std::vector<double> w(static_cast<size_t>(n));
  const lapack_int info =
      LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', static_cast<lapack_int>(n), a.a.data(), static_cast<lapack_int>(n),
                     w.data());
  if (info != 0) fail("la::sym_eig: LAPACKE_dsyevd failed (info {}) on a {} x {} matrix", info, n, n);
  // LAPACK: ascending values, vectors in columns. Reverse to descending, fix signs.
  e.values.resize(static_cast<size_t>(n));
  e.vectors = Mat(n, n);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t src = n - 1 - k;
    e.values[static_cast<size_t>(k)] = w[static_cast<size_t>(src)];
    int64_t arg = 0;
    for (int64_t i = 1; i < n; ++i)
      if (std::abs(a(i, src)) > std::abs(a(arg, src))) arg = i;
    const double sign = a(arg, src) < 0 ? -1.0 : 1.0;
    for (int64_t i = 0; i < n; ++i) e.vectors(i, k) = sign * a(i, src);
  }
  return e;
}

HermEig herm_eig(const std::vector<std::complex<double>>& H, int64_t n) {
  if (static_cast<int64_t>(H.size()) != n * n) fail("la::herm_eig: {} values for a {} x {} matrix", H.size(), n, n);
  HermEig e;
  if (n == 0) return e;
  std::vector<std::complex<double>> a = H;
  std::vector<double> w(static_cast<size_t>(n));
  const lapack_int info = LAPACKE_zheevd(LAPACK_ROW_MAJOR, 'V', 'U', static_cast<lapack_int>(n), a.data(),
                                         static_cast<lapack_int>(n), w.data());
  if (info != 0) fail("la::herm_eig: LAPACKE_zheevd failed (info {}) on a {} x {} matrix", info, n, n);
  e.values.resize(static_cast<size_t>(n));
  e.vectors.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t src = n - 1 - k;
    e.values[static_cast<size_t>(k)] = w[static_cast<size_t>(src)];
    int64_t arg = 0;
    for (int64_t i = 1; i < n; ++i)
      if (std::abs(a[static_cast<size_t>(i * n + src)]) > std::abs(a[static_cast<size_t>(arg * n + src)])) arg = i;
    const std::complex<double> top = a[static_cast<size_t>(arg * n + src)];
    const std::complex<double> phase = std::abs(top) > 0 ? std::conj(top) / std::abs(top) : 1.0;
    for (int64_t i = 0; i < n; ++i) e.vectors[static_cast<size_t>(i * n + k)] = phase * a[static_cast<size_t>(i * n + src)];
  }
  return e;
}

Svd svd(const Mat& A) {
  const int64_t m = A.rows, n = A.cols, k = std::min(m, n);
  Svd r;
  r.u = Mat(m, k);
  r.vt = Mat(k, n);
  r.s.resize(static_cast<size_t>(k));
  if (k == 0) return r;
  Mat a = A;
  const lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', static_cast<lapack_int>(m), static_cast<lapack_int>(n),
                                         a.a.data(), static_cast<lapack_int>(n), r.s.data(), r.u.a.data(),
                                         static_cast<lapack_int>(k), r.vt.a.data(), static_cast<lapack_int>(n));
  if (info != 0) fail("la::svd: LAPACKE_dgesdd failed (info {}) on a {} x {} matrix", info, m, n);
  return r;
}

void sym_sqrt(const Mat& S, double floor, Mat* sqrt_out, Mat* inv_sqrt_out) {
  const SymEig e = sym_eig(S);
  const int64_t n = S.rows;
  Mat Vs(n, n), Vi(n, n);  // V diag(sqrt(l)), V diag(1/sqrt(l))
  for (int64_t k = 0; k < n; ++k) {
    const double l = std::max(e.values[static_cast<size_t>(k)], floor);
    for (int64_t i = 0; i < n; ++i) {
      Vs(i, k) = e.vectors(i, k) * std::sqrt(l);
      Vi(i, k) = e.vectors(i, k) / std::sqrt(l);
    }
  }
  if (sqrt_out) {
    *sqrt_out = matmul(Vs, e.vectors, false, true);
    symmetrize(*sqrt_out);
  }
  if (inv_sqrt_out) {
    *inv_sqrt_out = matmul(Vi, e.vectors, false, true);
    symmetrize(*inv_sqrt_out);
  }
}

Mat from_tensor(const Tensor& t) {
  if (t.ndim() == 1) {
    Mat m(t.dim(0), 1);
    for (int64_t i = 0; i < t.dim(0); ++i) m(i, 0) = t.data[static_cast<size_t>(i)];
    return m;
  }
  if (t.ndim() != 2) fail("la::from_tensor: tensor of shape {} is not 1-D or 2-D", shape_str(t.shape));
  Mat m(t.dim(0), t.dim(1));
  std::copy(t.data.begin(), t.data.end(), m.a.begin());
  return m;
}

Mat augmented(const Tensor& w, const Tensor& b) {
  const int64_t out = w.dim(0), in = w.dim(1);
  Mat m(out, in + 1);
  for (int64_t o = 0; o < out; ++o) {
    std::copy(w.row(o), w.row(o) + in, m.row(o));
    m(o, in) = b.empty() ? 0.0 : b.data[static_cast<size_t>(o)];
  }
  return m;
}

// Typed weights are widened to float32 first (the double matrix is the big copy anyway).
Mat from_tensor(const TypedTensor& t) { return from_tensor(t.to_f32()); }

Mat augmented(const TypedTensor& w, const TypedTensor& b) {
  return augmented(w.to_f32(), b.empty() ? Tensor{} : b.to_f32());
}

Tensor to_tensor(const Mat& m, int64_t cols) {
  if (cols < 0) cols = m.cols;
  Tensor t({m.rows, cols});
  for (int64_t i = 0; i < m.rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t.data[static_cast<size_t>(i * cols + j)] = static_cast<float>(m(i, j));
  return t;
}

Tensor column_tensor(const Mat& m, int64_t c, bool drop_zero) {
  Tensor t({m.rows});
  bool any = false;
  for (int64_t i = 0; i < m.rows; ++i) {
    t.data[static_cast<size_t>(i)] = static_cast<float>(m(i, c));
    any = any || t.data[static_cast<size_t>(i)] != 0.0f;
  }
  return (drop_zero && !any) ? Tensor{} : t;
}

}  // namespace mlar::la
