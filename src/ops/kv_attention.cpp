#include "ops/kv_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/cpu_features.h"
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

// What decode_range needs of a decode call (kv_decode_attention fills it).
struct DecodeShape {
  int64_t n_q, q_start;
  int64_t g;           // query heads per kv group
  int64_t groups;      // kv groups (n_kv_heads)
  int64_t rows;        // query rows per group: n_q * g
  int64_t dk, dv;      // head sizes
  int64_t dkp, dvp;    // dk, dv rounded up to a multiple of w
  int64_t shared_off;  // >= 0: keys are the value rows from this column on
  int64_t khs, vhs;    // elements between kv groups j and j + 1 of k and of v
  bool head_major;     // each group's rows apart from the others' (walked group by group)
  int w;               // floats per vector the kernel uses (4, 8 or 16)
};

// ---- scalar level (the baseline x86-64 target) ----
namespace lvl_scalar {
constexpr int kMaxW = 4;  // SSE2, the x86-64 baseline
constexpr int kScoreRows = 2, kPvRows = 2, kPvAcc = 8;
constexpr bool kHasF16 = false;  // F16 rows go through widen() into a tile
template <int W>
float __attribute__((vector_size(4 * W))) widen_f16_vec(const uint16_t* p);  // not used at this level
template <int W>
float __attribute__((vector_size(4 * W))) widen_bf16_vec(const uint16_t* p);  // not used at this level
inline void widen(const void* src, DType t, int64_t n, float* dst) { widen_scalar(src, t, n, dst); }
#include "ops/kv_attention_kernel.inc"
}  // namespace lvl_scalar

// ---- AVX2 + FMA + F16C ----
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace lvl_avx2 {
constexpr int kMaxW = 8;
constexpr int kScoreRows = 2, kPvRows = 2, kPvAcc = 8;  // 16 registers
constexpr bool kHasF16 = true;
template <int W>
inline auto widen_f16_vec(const uint16_t* p) {
  if constexpr (W == 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  else return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
template <int W>
inline auto widen_bf16_vec(const uint16_t* p) {
  if constexpr (W == 8)
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  else
    return _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))), 16));
}
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
#pragma GCC target("avx512f,avx512bw,avx2,fma,f16c,prefer-vector-width=512")
namespace lvl_avx512 {
constexpr int kMaxW = 16;
constexpr int kScoreRows = 4, kPvRows = 4, kPvAcc = 24;  // 32 registers
constexpr bool kHasF16 = true;
template <int W>
inline auto widen_f16_vec(const uint16_t* p) {
  if constexpr (W == 16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  else if constexpr (W == 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  else return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
template <int W>
inline auto widen_bf16_vec(const uint16_t* p) {
  if constexpr (W == 16)
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  else if constexpr (W == 8)
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  else
    return _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))), 16));
}
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
#include "ops/kv_attention_lanes.inc"
#include "ops/kv_attention_bf16.inc"
}  // namespace lvl_avx512
#pragma GCC pop_options
#pragma GCC diagnostic pop

namespace {

using WidenFn = void (*)(const void*, DType, int64_t, float*);
using RangeFn = void (*)(const float*, const DecodeShape&, TypedRows, TypedRows, int64_t, int64_t, float*, float*,
                         float*);
struct Level {
  WidenFn widen;
  RangeFn range;
  int max_w;
};

// The kernels of the level ops/cpu_features.h has active (MLAR_CPU, set_cpu_level).
Level level() {
  switch (cpu_active_level()) {
    case CpuLevel::Avx512Bf16:
      return {lvl_avx512::widen, lvl_avx512::decode_range_bf16, lvl_avx512::kMaxW};
    case CpuLevel::Avx512:
      return {lvl_avx512::widen, lvl_avx512::decode_range_avx512, lvl_avx512::kMaxW};
    case CpuLevel::Avx2:
      return {lvl_avx2::widen, lvl_avx2::decode_range, lvl_avx2::kMaxW};
    case CpuLevel::Scalar:
      break;
  }
  return {lvl_scalar::widen, lvl_scalar::decode_range, lvl_scalar::kMaxW};
}

}  // namespace

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

void kv_decode_attention(const float* q, TypedRows k, TypedRows v, float* out, const AttentionDims& a) {
  check_dtype(k.dtype, "kv_attention");
  check_dtype(v.dtype, "kv_attention");
  if (a.n_q <= 0) return;
  const Level lv = level();
  const int64_t H = a.n_heads, J = a.n_kv_heads, g = H / J, dk = a.dk, dv = a.dv;
  const int64_t qs = a.q_stride ? a.q_stride : H * dk;
  const int64_t os = a.out_stride ? a.out_stride : H * dv;
  const int64_t T = a.q_start + a.n_q;
  DecodeShape d{};
  d.n_q = a.n_q;
  d.q_start = a.q_start;
  d.g = g;
  d.groups = J;
  d.rows = a.n_q * g;
  d.dk = dk;
  d.dv = dv;
  // Vector width: the level's widest that the smaller head size fills at least once.
  d.w = lv.max_w;
  while (d.w > 4 && std::min(dk, dv) < d.w) d.w /= 2;
  d.dkp = (dk + d.w - 1) / d.w * d.w;
  d.dvp = (dv + d.w - 1) / d.w * d.w;
  d.khs = a.k_heads_apart();
  d.vhs = a.v_heads_apart();
  d.head_major = J > 1 && (d.khs != dk || d.vhs != dv);
  // Same rows for keys and values (MLA absorbed): read each row once for both.
  d.shared_off = -1;
  if (J == 1 && k.dtype == v.dtype && k.stride == v.stride) {
    const auto diff = static_cast<const unsigned char*>(k.data) - static_cast<const unsigned char*>(v.data);
    const auto es = static_cast<std::ptrdiff_t>(elem_size(k.dtype));
    if (diff >= 0 && diff % es == 0 && diff / es + dk <= k.stride) d.shared_off = diff / es;
  }

  // Queries per group: row j * rows + i * g + hh = query i, head j * g + hh, times
  // the scale, zero-padded to dkp: [J * rows, dkp].
  const int64_t all_rows = J * d.rows;
  thread_local std::vector<float> qbuf, part;
  qbuf.assign(static_cast<size_t>(all_rows * d.dkp), 0.0f);
  for (int64_t j = 0; j < J; ++j)
    for (int64_t i = 0; i < a.n_q; ++i)
      for (int64_t hh = 0; hh < g; ++hh) {
        const float* src = q + i * qs + (j * g + hh) * dk;
        float* dst = qbuf.data() + (j * d.rows + i * g + hh) * d.dkp;
        for (int64_t c = 0; c < dk; ++c) dst[c] = src[c] * a.scale;
      }

  // Split the keys into `chunks` ranges, each task one range of every group (so the
  // rows of K and V, or of each kv head when head-major, are read in order): at least 64 keys a range, about 4
  // ranges per thread when there is enough work (ranges are claimed from a shared
  // counter, so a thread slowed by other work on the machine takes fewer). Online-
  // softmax partials per range, merged below. No BLAS call here: only the ops pool's
  // cpu_threads() threads run (OpenBLAS stays at one thread, ops/threads.h).
  const int64_t work = T * all_rows * (dk + dv);
  const int64_t threads = cpu_threads();
  int64_t chunks = 1;
  if (threads > 1 && work >= (1 << 15)) chunks = std::max<int64_t>(1, std::min<int64_t>((T + 63) / 64, 4 * threads));
  const int64_t len = (T + chunks - 1) / chunks;
  const int64_t per_task = all_rows * (2 + d.dvp);  // m[all_rows], l[all_rows], o[all_rows, dvp]
  part.resize(static_cast<size_t>(chunks * per_task));
  float* P = part.data();
  const float* qp = qbuf.data();
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      float* p = P + c * per_task;
      lv.range(qp, d, k, v, c * len, std::min(T, (c + 1) * len), p, p + all_rows, p + 2 * all_rows);
    }
  });

  // Merge: out = sum_c e^{m_c - M} o_c / sum_c e^{m_c - M} l_c, M = max_c m_c.
  for (int64_t R = 0; R < all_rows; ++R) {
    const int64_t j = R / d.rows, r = R % d.rows, i = r / g, h = j * g + r % g;
    float M = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < chunks; ++c) M = std::max(M, P[c * per_task + R]);
    float* dst = out + i * os + h * dv;
    std::fill(dst, dst + dv, 0.0f);
    float L = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
      const float* p = P + c * per_task;
      if (p[all_rows + R] == 0.0f) continue;  // no key of this range is visible
      const float w = std::exp(p[R] - M);
      L += w * p[all_rows + R];
      const float* o = p + 2 * all_rows + R * d.dvp;
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
  const int64_t khs = d.k_heads_apart(), vhs = d.v_heads_apart();
  for (int64_t j = 0; j < J; ++j) {
    widen_rows(offset_cols(k, j * khs), T, d.dk, kw.data() + j * d.dk, J * d.dk);
    widen_rows(offset_cols(v, j * vhs), T, d.dv, vw.data() + j * d.dv, J * d.dv);
  }
  a.k_stride = J * d.dk;
  a.v_stride = J * d.dv;
  a.k_head_stride = 0;
  a.v_head_stride = 0;
  causal_attention(q, kw.data(), vw.data(), out, a);
}

}  // namespace mlar::ops
