// Next-token choice from a row of logits.
//   temperature 0: greedy (argmax; the first index on ties).
//   temperature T > 0: p = softmax(logits / T); with top_p < 1, nucleus sampling
//   keeps the most probable tokens whose mass first reaches top_p and renormalises.
// The random stream is a std::mt19937_64 seeded with `seed`, so a seed reproduces
// a sequence exactly (uniforms are made from its raw 64-bit output, not from
// implementation-defined distributions).
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace mlar {

struct SamplerOptions {
  float temperature = 0.0f;  // >= 0; 0 = greedy
  float top_p = 1.0f;        // (0, 1]
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions opts = {});  // throws mlar::Error on bad options
  int32_t sample(std::span<const float> logits);
  const SamplerOptions& options() const { return opts_; }

 private:
  double uniform();  // in [0, 1)

  SamplerOptions opts_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;   // [V]
  std::vector<int32_t> order_;  // candidate ids, most probable first
};

}  // namespace mlar
