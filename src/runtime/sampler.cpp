#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "ops/argmax.h"
#include "util/error.h"

namespace mlar {

Sampler::Sampler(SamplerOptions opts) : opts_(opts), rng_(opts.seed) {
  if (!(opts.temperature >= 0.0f)) fail("sampler: temperature must be >= 0, got {}", opts.temperature);
  if (!(opts.top_p > 0.0f && opts.top_p <= 1.0f)) fail("sampler: top_p must be in (0, 1], got {}", opts.top_p);
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> logits) {
  const int64_t V = static_cast<int64_t>(logits.size());
  if (V == 0) fail("sampler: empty logits");
  if (opts_.temperature == 0.0f) return static_cast<int32_t>(ops::argmax(logits.data(), V));

  // p = softmax(logits / T), in double for the sum.
  probs_.resize(static_cast<size_t>(V));
  const float m = logits[static_cast<size_t>(ops::argmax(logits.data(), V))];
  const double inv_t = 1.0 / opts_.temperature;
  double sum = 0.0;
  for (int64_t i = 0; i < V; ++i) {
    const double e = std::exp((static_cast<double>(logits[i]) - m) * inv_t);
    probs_[i] = static_cast<float>(e);
    sum += e;
  }
  const double r = uniform();

  if (opts_.top_p >= 1.0f) {
    // Inverse CDF over the whole vocabulary.
    double target = r * sum, acc = 0.0;
    for (int64_t i = 0; i < V; ++i) {
      acc += probs_[i];
      if (acc > target) return static_cast<int32_t>(i);
    }
    return static_cast<int32_t>(V - 1);
  }

  // Nucleus: tokens below (1 - top_p) / (V - 1) of the mass can never be in the
  // nucleus, so drop them before sorting.
  const double cutoff = V > 1 ? (1.0 - opts_.top_p) / static_cast<double>(V - 1) * sum : 0.0;
  order_.clear();
  for (int64_t i = 0; i < V; ++i)
    if (probs_[i] >= cutoff) order_.push_back(static_cast<int32_t>(i));
  std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) {
    return probs_[a] != probs_[b] ? probs_[a] > probs_[b] : a < b;
  });
  const double want = static_cast<double>(opts_.top_p) * sum;
  double mass = 0.0;
  size_t keep = order_.size();
  for (size_t i = 0; i < order_.size(); ++i) {
    mass += probs_[order_[i]];
    if (mass >= want) {
      keep = i + 1;
      break;
    }
  }
  const double target = r * mass;
  double acc = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    acc += probs_[order_[i]];
    if (acc > target) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace mlar
