// Small random-weight models of each supported HF family, written as HF directories,
// for tests that must cover llama (llama3 rope scaling, explicit head_dim), qwen2
// (q/k/v biases, tied embeddings), qwen3 (per-head q/k norms, explicit head_dim,
// tied embeddings) and mistral.
#pragma once
#include <string>

#include "model/model.h"

namespace mlar::test {

// family: "llama", "qwen2", "qwen3", "mistral". Half RoPE layout, as HF checkpoints are.
ModelConfig family_config(const std::string& family);

// Writes a random model of `family` (seeded) as an HF directory under a fresh temp
// dir and returns its path.
std::string write_family_fixture(const std::string& family, uint64_t seed = 1);

}  // namespace mlar::test
