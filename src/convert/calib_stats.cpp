#include "convert/calib_stats.h"

#include <cblas.h>

#include <algorithm>

#include "util/error.h"

namespace mlar {

SecondMoment::SecondMoment(int64_t dim) : dim_(dim), sum_(dim + 1, dim + 1) {}

void SecondMoment::add(const float* x, int64_t n) {
  if (n <= 0) return;
  if (sum_.rows != dim_ + 1) fail("calibration: statistics added after they were taken");
  const int64_t w = dim_ + 1;
  chunk_.resize(static_cast<size_t>(n * w));
  for (int64_t t = 0; t < n; ++t) {
    double* dst = chunk_.data() + t * w;
    const float* src = x + t * dim_;
    for (int64_t i = 0; i < dim_; ++i) dst[i] = src[i];
    dst[dim_] = 1.0;
  }
  // sum += chunk^T chunk (upper triangle)
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(w), static_cast<int>(n), 1.0, chunk_.data(),
              static_cast<int>(w), 1.0, sum_.a.data(), static_cast<int>(w));
  count_ += n;
}

void SecondMoment::add_sum(const std::vector<double>& upper, int64_t count) {
  if (sum_.rows != dim_ + 1) fail("calibration: statistics added after they were taken");
  const int64_t w = dim_ + 1;
  if (static_cast<int64_t>(upper.size()) != w * w)
    fail("calibration: a second-moment sum of {} values for a ({} x {}) moment", upper.size(), w, w);
  for (int64_t i = 0; i < w; ++i)
    for (int64_t j = i; j < w; ++j) sum_(i, j) += upper[static_cast<size_t>(i * w + j)];
  count_ += count;
}

la::Mat SecondMoment::mean() const {
  if (count_ == 0) fail("calibration: no tokens were seen for a layer's statistics");
  la::Mat S = sum_;
  const double inv = 1.0 / static_cast<double>(count_);
  for (int64_t i = 0; i < S.rows; ++i)
    for (int64_t j = i; j < S.cols; ++j) S(i, j) = S(j, i) = sum_(i, j) * inv;
  return S;
}

la::Mat SecondMoment::take_mean() {
  if (count_ == 0) fail("calibration: no tokens were seen for a layer's statistics");
  la::Mat S = std::move(sum_);
  sum_ = la::Mat();
  chunk_ = std::vector<double>();
  const double inv = 1.0 / static_cast<double>(count_);
  count_ = 0;
  for (int64_t i = 0; i < S.rows; ++i)
    for (int64_t j = i; j < S.cols; ++j) S(i, j) = S(j, i) = S(i, j) * inv;
  return S;
}

Reservoir::Reservoir(int64_t dim, int64_t capacity, uint64_t seed) : dim_(dim), capacity_(capacity), rng_(seed) {}

void Reservoir::add(const float* x, int64_t n) {
  for (int64_t t = 0; t < n; ++t, ++seen_) {
    const float* src = x + t * dim_;
    if (seen_ < capacity_) {
      rows_.insert(rows_.end(), src, src + dim_);
      continue;
    }
    std::uniform_int_distribution<int64_t> pick(0, seen_);
    const int64_t k = pick(rng_);
    if (k < capacity_) std::copy(src, src + dim_, rows_.begin() + k * dim_);
  }
}

}  // namespace mlar
