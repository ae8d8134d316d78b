// CPU kernel levels for tests of decode numerics (ops/cpu_features.h).
//
// At the avx512bf16 level, MLA decode over a BF16 cache multiplies in BF16 (queries
// and probabilities rounded; ops/kv_attention.h): its results sit about 1e-3 from the
// f32 products on the same rows. Tests that hold decode to the prompt path (or a
// repeat conversion to its source) at tighter bounds run at every level below, each
// with its own bound (bf16_products).
#pragma once
#include <vector>

#include "ops/cpu_features.h"

namespace mlar::test {

// The CPU's best level and, where that is avx512bf16, avx512 (f32 products) too.
inline std::vector<ops::CpuLevel> decode_levels() {
  std::vector<ops::CpuLevel> out{ops::cpu_max_level()};
  if (out[0] == ops::CpuLevel::Avx512Bf16) out.push_back(ops::CpuLevel::Avx512);
  return out;
}

// Whether MLA decode over a BF16 cache multiplies in BF16 at `level`.
inline bool bf16_products(ops::CpuLevel level) { return level == ops::CpuLevel::Avx512Bf16; }

// Sets a level for a scope and restores the one before.
struct CpuLevelScope {
  ops::CpuLevel saved = ops::cpu_active_level();
  explicit CpuLevelScope(ops::CpuLevel l) { ops::set_cpu_level(l); }
  ~CpuLevelScope() { ops::set_cpu_level(saved); }
  CpuLevelScope(const CpuLevelScope&) = delete;
  CpuLevelScope& operator=(const CpuLevelScope&) = delete;
};

}  // namespace mlar::test
