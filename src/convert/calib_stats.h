// Statistics of one layer's attention input x = rmsnorm(h, attn_norm), streamed
// window by window so that memory does not depend on the number of calibration
// tokens:
//   SecondMoment: S = E[[x;1][x;1]^T], [(D+1), (D+1)] in double. The second moment
//                 of any affine projection y = W x + b follows from it:
//                 E[y y^T] = [W | b] S [W | b]^T (la::sandwich(la::augmented(W, b), S)).
//   Reservoir:    a uniform sample of at most `capacity` rows of x (Algorithm R,
//                 seeded), for the few quantities that are not functions of S
//                 (the RMSNorm weights of the latent and of q_lora).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "convert/linalg.h"

namespace mlar {

class SecondMoment {
 public:
  explicit SecondMoment(int64_t dim);  // dim = D (the moment is (D+1) x (D+1))
  // Adds n rows of x: [n, D].
  void add(const float* x, int64_t n);
  // Adds a sum computed elsewhere (e.g. on a GPU, ops/cuda/moment.h) over `count` rows: the upper
  // triangle (i <= j) of a row-major [(D+1), (D+1)] matrix; the rest is not read.
  void add_sum(const std::vector<double>& upper, int64_t count);
  int64_t count() const { return count_; }
  int64_t dim() const { return dim_; }
  // S = sum / count (symmetric, [(D+1), (D+1)]); throws when nothing was added.
  la::Mat mean() const;
  // The same, computed in place of the sum (no second (D+1)^2 copy); the moment is
  // spent afterwards (add and mean throw).
  la::Mat take_mean();

 private:
  int64_t dim_, count_ = 0;
  la::Mat sum_;                 // [(D+1), (D+1)], upper triangle accumulated by dsyrk
  std::vector<double> chunk_;   // [rows, D+1] the augmented rows of one add()
};

class Reservoir {
 public:
  Reservoir(int64_t dim, int64_t capacity, uint64_t seed = 0x5eed);
  void add(const float* x, int64_t n);  // x: [n, D]
  int64_t size() const { return static_cast<int64_t>(rows_.size() / static_cast<size_t>(dim_)); }
  int64_t dim() const { return dim_; }
  const float* row(int64_t i) const { return rows_.data() + i * dim_; }

 private:
  int64_t dim_, capacity_, seen_ = 0;
  std::vector<float> rows_;  // [size, D]
  std::mt19937_64 rng_;
};

}  // namespace mlar
