// Random-weight models of a given architecture, for tests and benchmarks.
#pragma once
#include <cstdint>

#include "model/model.h"

namespace mlar {

// Weights drawn from a seeded std::mt19937_64: projections ~ N(0, 1/in) (so
// activations stay O(1)), norm weights ~ 1 + N(0, 0.1^2), embeddings ~ N(0, 1),
// biases (when config.attention_bias) ~ N(0, 0.1^2), q/k norms (config.qk_norm) like
// the other norms. lm_head is separate unless
// config.tie_word_embeddings. The config is validated (GQA only: MLA configs go to
// random_mla_model); format is "random".
Model random_model(const ModelConfig& config, uint64_t seed);

}  // namespace mlar
