// Dense double-precision linear algebra for the calibrated conversion (extend.h):
// a small row-major matrix, BLAS products, and LAPACKE wrappers for the symmetric
// eigendecomposition (dsyevd) and the thin SVD (dgesdd). Everything the converter
// decides (RoPE bases, latent bases, norm weights) is computed here in double and
// only rounded to float when it becomes a weight.
#pragma once
#include <complex>
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"
#include "tensor/typed_tensor.h"

namespace mlar::la {

// A rows x cols matrix, row-major.
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<double> a;  // [rows, cols]

  Mat() = default;
  Mat(int64_t r, int64_t c) : rows(r), cols(c), a(static_cast<size_t>(r * c), 0.0) {}
  double& operator()(int64_t i, int64_t j) { return a[static_cast<size_t>(i * cols + j)]; }
  double operator()(int64_t i, int64_t j) const { return a[static_cast<size_t>(i * cols + j)]; }
  double* row(int64_t i) { return a.data() + i * cols; }
  const double* row(int64_t i) const { return a.data() + i * cols; }
  bool empty() const { return a.empty(); }

  static Mat identity(int64_t n);
};

// op(A) op(B), op = transpose when the flag is set (cblas_dgemm).
Mat matmul(const Mat& A, const Mat& B, bool trans_a = false, bool trans_b = false);
Mat transpose(const Mat& A);
// A B A^T for a symmetric B (the second moment of y = A x given that of x).
Mat sandwich(const Mat& A, const Mat& B);
// Rows [r0, r0 + n) / columns [c0, c0 + n) of A.
Mat rows_of(const Mat& A, int64_t r0, int64_t n);
Mat cols_of(const Mat& A, int64_t c0, int64_t n);
void symmetrize(Mat& A);  // (A + A^T) / 2
double trace(const Mat& A);

// Eigendecomposition of a symmetric matrix: values descending, vectors[:, k] the unit
// eigenvector of values[k]. Each eigenvector's sign is fixed so that its entry of
// largest magnitude is positive (results do not depend on LAPACK's sign choice).
struct SymEig {
  std::vector<double> values;  // [n]
  Mat vectors;                 // [n, n]
};
SymEig sym_eig(const Mat& S);

// Eigendecomposition of a Hermitian matrix H ([n, n] row-major): values descending,
// column k of vectors (row-major [n, n]) the unit eigenvector of values[k], its
// phase fixed so that its entry of largest magnitude is real and positive (zheevd).
struct HermEig {
  std::vector<double> values;                 // [n]
  std::vector<std::complex<double>> vectors;  // [n, n]
};
HermEig herm_eig(const std::vector<std::complex<double>>& H, int64_t n);

// Thin SVD A = U diag(s) V^T, s descending (dgesdd).
struct Svd {
  Mat u;                  // [m, k]
  std::vector<double> s;  // [k], k = min(m, n)
  Mat vt;                 // [k, n]
};
Svd svd(const Mat& A);

// S^(1/2) and S^(-1/2) of a symmetric positive semi-definite S, eigenvalues first
// floored at `floor` (> 0) so the inverse exists.
void sym_sqrt(const Mat& S, double floor, Mat* sqrt_out, Mat* inv_sqrt_out);

// Tensor <-> Mat. augmented(W [out, in], b [out] or empty) = [W | b], [out, in + 1].
Mat from_tensor(const Tensor& t);  // 2-D, or 1-D as a column
Mat from_tensor(const TypedTensor& t);  // any float dtype (widened)
Mat augmented(const Tensor& w, const Tensor& b);
Mat augmented(const TypedTensor& w, const TypedTensor& b);
// The first `cols` columns as a float tensor [rows, cols].
Tensor to_tensor(const Mat& m, int64_t cols = -1);
// Column `c` as a float vector tensor [rows] (empty when all zero and drop_zero).
Tensor column_tensor(const Mat& m, int64_t c, bool drop_zero);

}  // namespace mlar::la
