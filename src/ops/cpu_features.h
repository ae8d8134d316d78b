// The instruction level the typed-weight kernels (ops/typed_matmul.h) dispatch to.
//
// Detected once from the CPU (GCC's __builtin_cpu_supports, which also checks that
// the OS saves the wide registers): Avx512 needs AVX-512F and AVX-512BW, Avx2 needs
// AVX2, FMA and F16C; Avx512Bf16 is Avx512 plus AVX512-BF16 (vdpbf16ps), which only
// the attention kernels use (BF16 caches with BF16 queries and probabilities,
// ops/kv_attention.h); every other kernel runs its Avx512 code there. The library is built with default flags; the kernels carry
// GCC target attributes, so the same binary runs on any x86-64.
// MLAR_CPU=scalar|avx2|avx512|avx512bf16 in the environment lowers the level (a level above the
// CPU's is clamped to it); set_cpu_level does the same from code (tests, benchmarks).
#pragma once

namespace mlar::ops {

enum class CpuLevel { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

// The highest level this CPU runs.
CpuLevel cpu_max_level();
// The level the kernels use now (cpu_max_level, or lower through MLAR_CPU / set_cpu_level).
CpuLevel cpu_active_level();
// Uses `level`, clamped to cpu_max_level(); returns the level now in use. Call it
// between ops, not while another thread runs them.
CpuLevel set_cpu_level(CpuLevel level);
// "scalar", "avx2", "avx512", "avx512bf16".
const char* cpu_level_name(CpuLevel level);
// Parses a name as MLAR_CPU takes it; throws mlar::Error "<context>: ..." otherwise.
CpuLevel parse_cpu_level(const char* name, const char* context);

}  // namespace mlar::ops
