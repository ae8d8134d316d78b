#include "ops/kv_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/exp.h"
#include "ops/parallel.h"
#include "ops/threads.h"
#include "tensor/typed_tensor.h"
#include "util/error.h"
#include "util/half.h"

namespace mlar::ops {
namespace {

size_t elem_size(DType t) { return t == DType::F32 ? 4 : 2; }

void check_dtype(DType t, const char* what) {
  if (t != DType::F32 && t != DType::BF16 && t != DType::F16)
    fail("{}: cache rows of dtype {}; expected F32, BF16 or F16", what, dtype_name(t));
}

// Scalar conversion of the tail of a row (and the whole row at the scalar level).
inline void widen_scalar(const void* src, DType t, int64_t n, float* dst) {
  convert_values(src, t, dst, DType::F32, n);
}

}  // namespace

// ---- scalar level (the baseline x86-64 target) ----
namespace lvl_scalar {
inline void widen(const void* src, DType t, int64_t n, float* dst) { widen_scalar(src, t, n, dst); }
#include "ops/kv_attention_kernel.inc"
}  // namespace lvl_scalar

// ---- AVX2 + FMA + F16C ----
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace lvl_avx2 {
inline void widen(const void* src, DType t, int64_t n, float* dst) {
  const auto* h = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (t == DType::BF16) {
    for (; i + 8 <= n; i += 8) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
  } else if (t == DType::F16) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
  } else {
    widen_scalar(src, t, n, dst);
    return;
  }
  if (i < n) widen_scalar(h + i, t, n - i, dst + i);
}
#include "ops/kv_attention_kernel.inc"
}  // namespace lvl_avx2
#pragma GCC pop_options

// ---- AVX-512F ----
// GCC 12's avx512fintrin.h initialises _mm512_undefined_* values from themselves,
// which -Wmaybe-uninitialized reports at every inlined use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,prefer-vector-width=512")
namespace lvl_avx512 {
inline void widen(const void* src, DType t, int64_t n, float* dst) {
  const auto* h = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (t == DType::BF16) {
    for (; i + 16 <= n; i += 16) {
      const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i)));
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
  } else if (t == DType::F16) {
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
  } else {
    widen_scalar(src, t, n, dst);
    return;
  }
  if (i < n) widen_scalar(h + i, t, n - i, dst + i);
}
#include "ops/kv_attention_kernel.inc"
}  // namespace lvl_avx512
#pragma GCC pop_options
#pragma GCC diagnostic pop

namespace {

using WidenFn = void (*)(const void*, DType, int64_t, float*);
using RangeFn = void (*)(const float*, int64_t, TypedRows, TypedRows, int64_t, const AttentionDims&, int64_t, int64_t,
                         int64_t, float*, float*, float*);
struct Level {
  const char* name;
  WidenFn widen;
  RangeFn range;
};
const Level kLevels[] = {{"scalar", lvl_scalar::widen, lvl_scalar::decode_range},
                         {"avx2", lvl_avx2::widen, lvl_avx2::decode_range},
                         {"avx512", lvl_avx512::widen, lvl_avx512::decode_range}};

int cpu_max_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) return 1;
  return 0;
}

int level_index(const std::string& name) {
  for (int i = 0; i < 3; ++i)
    if (name == kLevels[i].name) return i;
  return -1;
}

std::atomic<int>& current_level() {
  static std::atomic<int> level = [] {
    int l = cpu_max_level();
    if (const char* env = std::getenv("MLAR_CPU")) {
      const int want = level_index(env);
      if (want >= 0 && want < l) l = want;
    }
    return l;
  }();
  return level;
}

const Level& level() { return kLevels[current_level().load(std::memory_order_relaxed)]; }

}  // namespace

std::vector<std::string> kv_kernel_levels() {
  std::vector<std::string> out;
  for (int i = 0; i <= cpu_max_level(); ++i) out.emplace_back(kLevels[i].name);
  return out;
}

std::string kv_kernel_level() { return level().name; }

void set_kv_kernel_level(const std::string& name) {
  const int i = level_index(name);
  if (i < 0) fail("set_kv_kernel_level: unknown level '{}' (scalar, avx2, avx512)", name);
  if (i > cpu_max_level()) fail("set_kv_kernel_level: this CPU cannot run '{}'", name);
  current_level().store(i);
}

TypedRows offset_cols(TypedRows r, int64_t cols) {
  r.data = static_cast<const unsigned char*>(r.data) + static_cast<size_t>(cols) * elem_size(r.dtype);
  return r;
}

void widen_rows(TypedRows src, int64_t rows, int64_t cols, float* dst, int64_t dst_stride) {
  check_dtype(src.dtype, "widen_rows");
  const WidenFn w = level().widen;
  const size_t es = elem_size(src.dtype);
  const auto* base = static_cast<const unsigned char*>(src.data);
  parallel_for(rows, pick_grain(rows, cols, 1 << 18, 16), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) w(base + static_cast<size_t>(t * src.stride) * es, src.dtype, cols, dst + t * dst_stride);
  });
}

void round_rows(const float* src, int64_t src_stride, int64_t rows, int64_t cols, void* dst, DType t,
                int64_t dst_stride) {
  check_dtype(t, "round_rows");
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * src_stride;
    if (t == DType::F32) {
      std::memcpy(static_cast<float*>(dst) + r * dst_stride, s, static_cast<size_t>(cols) * 4);
      continue;
    }
    uint16_t* d = static_cast<uint16_t*>(dst) + r * dst_stride;
    if (t == DType::BF16) {
      for (int64_t c = 0; c < cols; ++c) d[c] = f32_to_bf16(s[c]);
    } else {
      for (int64_t c = 0; c < cols; ++c) d[c] = f32_to_f16(s[c]);
    }
  }
}

void kv_decode_attention(const float* q, TypedRows k, TypedRows v, float* out, const AttentionDims& d) {
  check_dtype(k.dtype, "kv_attention");
  check_dtype(v.dtype, "kv_attention");
  if (d.n_q <= 0) return;
  const int64_t H = d.n_heads, J = d.n_kv_heads, g = H / J, dv = d.dv;
  const int64_t qs = d.q_stride ? d.q_stride : H * d.dk;
  const int64_t os = d.out_stride ? d.out_stride : H * dv;
  const int64_t T = d.q_start + d.n_q;
  // Same rows for keys and values (MLA absorbed): widen each row once.
  int64_t shared_off = -1;
  if (J == 1 && k.dtype == v.dtype && k.stride == v.stride) {
    const auto diff = static_cast<const unsigned char*>(k.data) - static_cast<const unsigned char*>(v.data);
    const auto es = static_cast<std::ptrdiff_t>(elem_size(k.dtype));
    if (diff >= 0 && diff % es == 0 && diff / es + d.dk <= k.stride) shared_off = diff / es;
  }

  // Split each group's keys into `chunks` ranges (tasks = J * chunks), at least 64
  // keys each, about 4 tasks per thread when there is enough work.
  const int64_t rows = d.n_q * g;
  const int64_t work = T * rows * J * (d.dk + dv);
  const int64_t threads = cpu_threads();
  int64_t chunks = 1;
  if (threads > 1 && work >= (1 << 15))
    chunks = std::max<int64_t>(1, std::min<int64_t>((T + 63) / 64, (4 * threads + J - 1) / J));
  const int64_t len = (T + chunks - 1) / chunks;
  const int64_t tasks = J * chunks;
  const int64_t per_task = rows * (2 + dv);  // m[rows], l[rows], o[rows, dv]
  thread_local std::vector<float> part;
  part.resize(static_cast<size_t>(tasks * per_task));
  float* P = part.data();
  const RangeFn range = level().range;
  parallel_for(tasks, 1, [&](int64_t a, int64_t b) {
    for (int64_t task = a; task < b; ++task) {
      const int64_t j = task / chunks, c = task % chunks;
      const int64_t t0 = c * len, t1 = std::min(T, t0 + len);
      float* p = P + task * per_task;
      if (t0 >= t1) {
        std::fill(p, p + rows, -std::numeric_limits<float>::infinity());
        std::fill(p + rows, p + 2 * rows, 0.0f);
        std::fill(p + 2 * rows, p + per_task, 0.0f);
        continue;
      }
      range(q, qs, k, v, shared_off, d, j, t0, t1, p, p + rows, p + 2 * rows);
    }
  });

  // Merge: out = sum_c e^{m_c - M} o_c / sum_c e^{m_c - M} l_c, M = max_c m_c.
  for (int64_t j = 0; j < J; ++j)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r / g, h = j * g + r % g;
      float M = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < chunks; ++c) M = std::max(M, P[(j * chunks + c) * per_task + r]);
      float* dst = out + i * os + h * dv;
      std::fill(dst, dst + dv, 0.0f);
      float L = 0.0f;
      for (int64_t c = 0; c < chunks; ++c) {
        const float* p = P + (j * chunks + c) * per_task;
        if (p[rows + r] == 0.0f) continue;  // no key of this range is visible
        const float w = std::exp(p[r] - M);
        L += w * p[rows + r];
        const float* o = p + 2 * rows + r * dv;
        for (int64_t x = 0; x < dv; ++x) dst[x] += w * o[x];
      }
      const float inv = 1.0f / L;
      for (int64_t x = 0; x < dv; ++x) dst[x] *= inv;
    }
}

void kv_attention(const float* q, TypedRows k, TypedRows v, float* out, const AttentionDims& d) {
  if (d.n_q <= 0) return;
  if (d.n_q < kKvDecodeBatch) {
    kv_decode_attention(q, k, v, out, d);
    return;
  }
  check_dtype(k.dtype, "kv_attention");
  check_dtype(v.dtype, "kv_attention");
  const int64_t T = d.q_start + d.n_q, J = d.n_kv_heads;
  AttentionDims a = d;
  if (k.dtype == DType::F32 && v.dtype == DType::F32) {
    a.k_stride = k.stride;
    a.v_stride = v.stride;
    causal_attention(q, static_cast<const float*>(k.data), static_cast<const float*>(v.data), out, a);
    return;
  }
  // Widen the rows each side reads into packed f32 copies ([T, J * dk], [T, J * dv]).
  thread_local std::vector<float> kw, vw;
  kw.resize(static_cast<size_t>(T * J * d.dk));
  vw.resize(static_cast<size_t>(T * J * d.dv));
  widen_rows(k, T, J * d.dk, kw.data(), J * d.dk);
  widen_rows(v, T, J * d.dv, vw.data(), J * d.dv);
  a.k_stride = J * d.dk;
  a.v_stride = J * d.dv;
  causal_attention(q, kw.data(), vw.data(), out, a);
}

}  // namespace mlar::ops
