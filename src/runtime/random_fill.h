// Seeded normal draws for random-weight models (random_model.h, random_mla_model.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <random>

#include "tensor/tensor.h"

namespace mlar {

class RandomFiller {
 public:
  explicit RandomFiller(uint64_t seed) : rng_(seed) {}
  // N(mean, std^2) by Box-Muller on the raw generator output (reproducible everywhere).
  Tensor normal(Shape s, double mean, double std) {
    Tensor t(std::move(s));
    for (auto& v : t.data) v = static_cast<float>(mean + std * gauss());
    return t;
  }

 private:
  double uniform() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; }
  double gauss() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform())), a = 2.0 * 3.14159265358979323846 * uniform();
    spare_ = r * std::sin(a);
    have_spare_ = true;
    return r * std::cos(a);
  }
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool have_spare_ = false;
};

}  // namespace mlar
