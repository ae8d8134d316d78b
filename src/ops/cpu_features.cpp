#include "ops/cpu_features.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace mlar::ops {
namespace {

CpuLevel detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return __builtin_cpu_supports("avx512bf16") ? CpuLevel::Avx512Bf16 : CpuLevel::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return CpuLevel::Avx2;
#endif
  return CpuLevel::Scalar;
}

CpuLevel initial_level() {
  const CpuLevel max = cpu_max_level();
  const char* env = std::getenv("MLAR_CPU");
  if (!env || !*env) return max;
  return std::min(max, parse_cpu_level(env, "MLAR_CPU"));
}

std::atomic<int>& active() {
  static std::atomic<int> level{static_cast<int>(initial_level())};
  return level;
}

}  // namespace

CpuLevel cpu_max_level() {
  static const CpuLevel level = detect();
  return level;
}

CpuLevel cpu_active_level() { return static_cast<CpuLevel>(active().load(std::memory_order_relaxed)); }

CpuLevel set_cpu_level(CpuLevel level) {
  const CpuLevel l = std::min(level, cpu_max_level());
  active().store(static_cast<int>(l), std::memory_order_relaxed);
  return l;
}

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::Avx512Bf16:
      return "avx512bf16";
    case CpuLevel::Avx512:
      return "avx512";
    case CpuLevel::Avx2:
      return "avx2";
    case CpuLevel::Scalar:
      break;
  }
  return "scalar";
}

CpuLevel parse_cpu_level(const char* name, const char* context) {
  for (CpuLevel l : {CpuLevel::Scalar, CpuLevel::Avx2, CpuLevel::Avx512, CpuLevel::Avx512Bf16})
    if (std::strcmp(name, cpu_level_name(l)) == 0) return l;
  fail("{}: unknown CPU level '{}' (expected scalar, avx2, avx512 or avx512bf16)", context, name);
}

}  // namespace mlar::ops
