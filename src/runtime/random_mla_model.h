// Random-weight MLA models (MLA.md §2) of a given architecture, for tests and
// benchmarks. The layout comes entirely from config.mla: DeepSeek-like (n_r = 1,
// d_n > 0, latent norm, q_lora), repeat-like (n_r = n_kv, d_n = 0, W_qr), per-layer
// ranks, stored absorption. (Building the exact repeat config from a GQA config is
// the converter's job: convert/repeat.h.)
#pragma once
#include <cstdint>

#include "model/model.h"

namespace mlar {

// Embedding, norms, MLP and output head as random_model(config without mla, seed);
// attention tensors per layer exactly as check_mla_layer_shapes expects them, drawn
// from a seeded std::mt19937_64: projections ~ N(0, 1/in), latent and q_a norm
// weights ~ 1 + N(0, 0.1^2); biases b_q, b_dkv, b_kr ~ N(0, 0.1^2) when
// config.attention_bias. format is "random".
Model random_mla_model(const ModelConfig& config, uint64_t seed);

}  // namespace mlar
