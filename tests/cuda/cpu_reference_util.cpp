// The CPU side of every CUDA test computes its products in f32. On a CPU with
// AVX512-BF16, MLA decode over a BF16 cache would multiply in BF16 (queries and
// probabilities rounded, ops/kv_attention.h), about 1e-3 from the f32 products: the
// GPU kernels are held to the f32 ones at their tighter bounds, so the whole binary
// runs one level down there (avx512, before any test starts).
#include "ops/cpu_features.h"

namespace {

const bool kF32Reference = [] {
  if (mlar::ops::cpu_max_level() == mlar::ops::CpuLevel::Avx512Bf16) mlar::ops::set_cpu_level(mlar::ops::CpuLevel::Avx512);
  return true;
}();

}  // namespace
