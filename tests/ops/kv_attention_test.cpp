// ops/kv_attention: attention over cache rows kept as F32, BF16 or F16, at every
// instruction level this CPU runs, against a double-precision reference computed on
// the values the cache actually holds (the rows rounded to the dtype and widened
// back), and against causal_attention (the f32 kernel) for F32 rows.
// Tolerance: 1e-5 of the largest output magnitude for every dtype: widening is
// exact, so the only differences are the f32 sums' order and the softmax exp
// (relative error ~2e-7). The one exception is the avx512bf16 level's MLA path
// (BF16 shared rows), which rounds the queries and the probabilities to BF16: it is
// checked against the reference on the rounded queries at kBf16DotTol.
#include "ops/kv_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "ops/cpu_features.h"
#include "ops/threads.h"
#include "scalar_reference.h"
#include "util/error.h"
#include "util/half.h"

namespace mlar {
namespace {

constexpr double kTol = 1e-5;
// The probabilities' BF16 rounding (2^-9 relative each; 1.2-1.9e-3 measured here, about
// what rounding the queries alone moves the outputs by).
constexpr double kBf16DotTol = 4e-3;

// Rows [n, cols] rounded to `t`: the stored bytes and the f32 values they hold.
struct Stored {
  std::vector<uint16_t> half;  // BF16 / F16 storage
  std::vector<float> f32;      // F32 storage, or the widened half values
  ops::TypedRows rows(DType t, int64_t stride) const {
    ops::TypedRows r;
    r.data = t == DType::F32 ? static_cast<const void*>(f32.data()) : static_cast<const void*>(half.data());
    r.dtype = t;
    r.stride = stride;
    return r;
  }
};

Stored store(const std::vector<float>& x, DType t) {
  Stored s;
  s.f32 = x;
  if (t == DType::F32) return s;
  s.half.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    s.half[i] = t == DType::BF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
    s.f32[i] = t == DType::BF16 ? bf16_to_f32(s.half[i]) : f16_to_f32(s.half[i]);
  }
  return s;
}

// Straight loops: out_h(i) = sum_{t <= q_start+i} softmax(scale q_h(i) . k_j(t)) v_j(t),
// k_j(t) at k[t * ks + j * dk], v_j(t) at v[t * vs + j * dv].
std::vector<double> reference(const std::vector<float>& q, const float* k, int64_t ks, const float* v, int64_t vs,
                              const ops::AttentionDims& a) {
  const int64_t g = a.n_heads / a.n_kv_heads, qs = a.n_heads * a.dk;
  std::vector<double> out(static_cast<size_t>(a.n_q * a.n_heads * a.dv), 0.0);
  for (int64_t i = 0; i < a.n_q; ++i)
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t j = h / g, nk = a.q_start + i + 1;
      std::vector<double> s(static_cast<size_t>(nk));
      double m = -1e300, z = 0;
      for (int64_t t = 0; t < nk; ++t) {
        double dot = 0;
        for (int64_t c = 0; c < a.dk; ++c) dot += double(q[size_t(i * qs + h * a.dk + c)]) * k[t * ks + j * a.dk + c];
        s[size_t(t)] = dot * a.scale;
        m = std::max(m, s[size_t(t)]);
      }
      for (auto& e : s) z += (e = std::exp(e - m));
      for (int64_t t = 0; t < nk; ++t)
        for (int64_t c = 0; c < a.dv; ++c)
          out[size_t((i * a.n_heads + h) * a.dv + c)] += s[size_t(t)] / z * v[t * vs + j * a.dv + c];
    }
  return out;
}

ops::AttentionDims dims(int64_t n_q, int64_t heads, int64_t kv_heads, int64_t dk, int64_t dv, int64_t context) {
  ops::AttentionDims a;
  a.n_q = n_q;
  a.n_heads = heads;
  a.n_kv_heads = kv_heads;
  a.dk = dk;
  a.dv = dv;
  a.q_start = context - n_q;
  a.scale = 1.0f / std::sqrt(float(dk));
  return a;
}

struct GqaCase {
  int64_t heads, kv_heads, d;
};

// Restores the dispatch level and thread count a test changed.
struct LevelGuard {
  ops::CpuLevel level = ops::cpu_active_level();
  int threads = ops::cpu_threads();
  ~LevelGuard() {
    ops::set_cpu_level(level);
    ops::set_cpu_threads(threads);
  }
};

// The levels this CPU runs, by name (the kernels' dispatch is ops/cpu_features.h's).
std::vector<ops::CpuLevel> levels() {
  std::vector<ops::CpuLevel> out;
  for (ops::CpuLevel l :
       {ops::CpuLevel::Scalar, ops::CpuLevel::Avx2, ops::CpuLevel::Avx512, ops::CpuLevel::Avx512Bf16})
    if (l <= ops::cpu_max_level()) out.push_back(l);
  return out;
}

// GQA layout: K and V in separate arrays [T, n_kv * d]; decode (n_q 1 and 3) and
// prefill (n_q 20, through widening + causal_attention); contexts 1, 7, 300, 1000.
TEST(KvAttention, GqaMatchesReferenceOnStoredValues) {
  LevelGuard guard;
  ops::set_cpu_threads(4);  // split the keys even on a small machine
  // Head sizes below, at and between the vector widths (4, 8, 16 floats; 12, 20 and
  // 40 pad), odd heads per group (3, 5, 7) and group counts.
  const GqaCase cases[] = {{1, 1, 8},   {2, 1, 64},  {4, 2, 8},  {5, 5, 64},  {8, 2, 128}, {12, 4, 64}, {16, 1, 128},
                           {16, 16, 8}, {6, 3, 128}, {9, 3, 12}, {15, 3, 20}, {7, 1, 40},  {10, 2, 4}};
  for (const ops::CpuLevel lv : levels()) {
    ASSERT_EQ(ops::set_cpu_level(lv), lv);
    const std::string level = ops::cpu_level_name(lv);
    for (DType t : {DType::F32, DType::BF16, DType::F16})
      for (const GqaCase& c : cases)
        for (int64_t T : {1, 7, 65, 300, 1000})  // 65: one key past a block of 64
          for (int64_t n_q : {1, 3, 15, 20}) {
            if (n_q > T) continue;
            if (T == 1000 && c.heads * c.d > 512 && n_q >= 15) continue;  // keep the reference quick
            const ops::AttentionDims a = dims(n_q, c.heads, c.kv_heads, c.d, c.d, T);
            const int64_t kvd = c.kv_heads * c.d;
            const auto q = test::random_floats(n_q * c.heads * c.d, 1 + T, -2, 2);
            const Stored k = store(test::random_floats(T * kvd, 2 + T, -2, 2), t);
            const Stored v = store(test::random_floats(T * kvd, 3 + T, -1, 1), t);
            std::vector<float> out(size_t(n_q * c.heads * c.d));
            ops::kv_attention(q.data(), k.rows(t, kvd), v.rows(t, kvd), out.data(), a);
            const auto want = reference(q, k.f32.data(), kvd, v.f32.data(), kvd, a);
            EXPECT_LE(test::rel_diff(out, want), kTol) << level << " " << dtype_name(t) << " heads " << c.heads
                                                      << "/" << c.kv_heads << " d " << c.d << " T " << T << " n_q "
                                                      << n_q;
            if (t == DType::F32 && n_q < ops::kKvDecodeBatch) {  // the f32 kernel on the same rows
              std::vector<float> f32(out.size());
              ops::causal_attention(q.data(), k.f32.data(), v.f32.data(), f32.data(), a);
              EXPECT_LE(test::rel_diff(out, f32), kTol) << level << " T " << T;
            }
          }
  }
}

// Head-major layout ([n_kv, reserved, d], the runtime's GQA cache): the same rows
// given with head strides, reserved past the context (the gap is never read), give
// the reference's result on the decode kernel (its group-by-group walk), the prefill
// path and causal_attention.
TEST(KvAttention, HeadMajorRowsMatchReference) {
  LevelGuard guard;
  ops::set_cpu_threads(3);
  struct Case {
    int64_t heads, kv_heads, dk, dv;
  };
  // {8, 2, 64, 32} and {6, 3, 16, 40}: key and value heads of different sizes.
  const Case cases[] = {{4, 2, 8, 8},    {8, 2, 128, 128}, {12, 4, 64, 64}, {15, 3, 20, 20},
                        {6, 6, 16, 16},  {8, 2, 64, 32},   {6, 3, 16, 40}};
  for (const ops::CpuLevel lv : levels()) {
    ASSERT_EQ(ops::set_cpu_level(lv), lv);
    const std::string level = ops::cpu_level_name(lv);
    for (DType t : {DType::F32, DType::BF16, DType::F16})
      for (const Case& c : cases)
        for (int64_t T : {7, 65, 300, 1000})
          for (int64_t n_q : {1, 3, 20}) {
            if (n_q > T) continue;
            ops::AttentionDims a = dims(n_q, c.heads, c.kv_heads, c.dk, c.dv, T);
            const int64_t J = c.kv_heads, kd = J * c.dk, vd = J * c.dv, reserved = T + 37;
            const auto q = test::random_floats(n_q * c.heads * c.dk, 31 + T, -2, 2);
            const auto kx = test::random_floats(T * kd, 32 + T, -2, 2), vx = test::random_floats(T * vd, 33 + T);
            // Head j's piece of row t at (j * reserved + t) * d; NaN in the reserved gap.
            std::vector<float> kh(size_t(J * reserved * c.dk), NAN), vh(size_t(J * reserved * c.dv), NAN);
            for (int64_t j = 0; j < J; ++j)
              for (int64_t tt = 0; tt < T; ++tt) {
                for (int64_t x = 0; x < c.dk; ++x)
                  kh[size_t((j * reserved + tt) * c.dk + x)] = kx[size_t(tt * kd + j * c.dk + x)];
                for (int64_t x = 0; x < c.dv; ++x)
                  vh[size_t((j * reserved + tt) * c.dv + x)] = vx[size_t(tt * vd + j * c.dv + x)];
              }
            const Stored k = store(kh, t), v = store(vh, t), krow = store(kx, t), vrow = store(vx, t);
            a.k_head_stride = reserved * c.dk;
            a.v_head_stride = reserved * c.dv;
            std::vector<float> out(size_t(n_q * c.heads * c.dv));
            ops::kv_attention(q.data(), k.rows(t, c.dk), v.rows(t, c.dv), out.data(), a);
            const auto want = reference(q, krow.f32.data(), kd, vrow.f32.data(), vd, a);
            EXPECT_LE(test::rel_diff(out, want), kTol) << level << " " << dtype_name(t) << " heads " << c.heads
                                                      << "/" << c.kv_heads << " dk " << c.dk << " dv " << c.dv
                                                      << " T " << T << " n_q " << n_q;
            if (t == DType::F32) {  // row strides left 0: packed head rows of dk and dv
              std::vector<float> f32(out.size());
              ops::causal_attention(q.data(), k.f32.data(), v.f32.data(), f32.data(), a);
              EXPECT_LE(test::rel_diff(f32, want), kTol) << level << " causal_attention T " << T << " n_q " << n_q;
            }
          }
  }
}

// MLA absorbed layout: one group of H heads over rows [c | k_pe] of r + R values;
// keys are the whole row (NoPE part scores) or k_pe alone, values are c.
TEST(KvAttention, SharedLatentRowsMatchReference) {
  LevelGuard guard;
  ops::set_cpu_threads(3);
  struct MlaCase {
    int64_t heads, r, R;
  };
  // {16, 96, 32}: bench_context's 25% compressed form; {5, 20, 12}, {7, 40, 6}: sizes
  // that pad to the vector width.
  const MlaCase cases[] = {{1, 8, 8},    {16, 32, 32}, {8, 64, 16}, {3, 128, 64},
                           {16, 256, 64}, {16, 96, 32}, {5, 20, 12}, {7, 40, 6}};
  for (const ops::CpuLevel lv : levels()) {
    ASSERT_EQ(ops::set_cpu_level(lv), lv);
    const std::string level = ops::cpu_level_name(lv);
    for (DType t : {DType::F32, DType::BF16, DType::F16})
      for (const MlaCase& c : cases)
        for (bool nope : {true, false})
          for (int64_t T : {1, 7, 65, 300, 1000}) {
            const int64_t cs = c.r + c.R, dq = (nope ? c.r : 0) + c.R, n_q = T >= 2 ? 2 : 1;
            if (T == 1000 && c.heads * cs > 2048 && lv != ops::cpu_max_level()) continue;  // keep the reference quick
            ops::AttentionDims a = dims(n_q, c.heads, 1, dq, c.r, T);
            const auto q = test::random_floats(n_q * c.heads * dq, 5 + T, -1, 1);
            const Stored rows = store(test::random_floats(T * cs, 6 + T, -2, 2), t);
            const ops::TypedRows all = rows.rows(t, cs);
            std::vector<float> out(size_t(n_q * c.heads * c.r));
            ops::kv_decode_attention(q.data(), nope ? all : ops::offset_cols(all, c.r), all, out.data(), a);
            // The BF16 dot-product path: BF16 rows, head sizes of at least 16 (ops/kv_attention_bf16.inc).
            const bool dot = lv == ops::CpuLevel::Avx512Bf16 && t == DType::BF16 && std::min(dq, c.r) >= 16;
            std::vector<float> qr = q;  // the queries the kernel multiplies: rounded to BF16 after the scale
            if (dot)
              for (auto& x : qr) x = bf16_to_f32(f32_to_bf16(x * a.scale)) / a.scale;
            const auto want = reference(qr, rows.f32.data() + (nope ? 0 : c.r), cs, rows.f32.data(), cs, a);
            EXPECT_LE(test::rel_diff(out, want), dot ? kBf16DotTol : kTol)
                << level << " " << dtype_name(t) << " heads " << c.heads << " r " << c.r << " R " << c.R << " nope "
                << nope << " T " << T;
            if (dot && T >= 65) {  // the path ran: the AVX-512 f32 kernel's result differs
              LevelGuard inner;
              ops::set_cpu_level(ops::CpuLevel::Avx512);
              std::vector<float> f32(out.size());
              ops::kv_decode_attention(q.data(), nope ? all : ops::offset_cols(all, c.r), all, f32.data(), a);
              EXPECT_GT(test::rel_diff(out, f32), 1e-6) << "heads " << c.heads << " r " << c.r << " T " << T;
            }
          }
  }
}

// One thread and many: the split over keys and its merge give the same result.
TEST(KvAttention, SplitOverKeysMatchesOneThread) {
  LevelGuard guard;
  const ops::AttentionDims a = dims(1, 8, 2, 64, 64, 1000);
  const auto q = test::random_floats(8 * 64, 11, -3, 3);
  const Stored k = store(test::random_floats(1000 * 128, 12, -3, 3), DType::BF16);
  const Stored v = store(test::random_floats(1000 * 128, 13), DType::BF16);
  std::vector<float> one(8 * 64), many(8 * 64);
  ops::set_cpu_threads(1);
  ops::kv_attention(q.data(), k.rows(DType::BF16, 128), v.rows(DType::BF16, 128), one.data(), a);
  ops::set_cpu_threads(8);
  ops::kv_attention(q.data(), k.rows(DType::BF16, 128), v.rows(DType::BF16, 128), many.data(), a);
  EXPECT_LE(test::rel_diff(many, one), kTol);
  EXPECT_GT(test::rel_diff(one, std::vector<float>(one.size(), 0.0f)), 0.0);  // not all zero
}

TEST(KvAttention, WidenAndRoundRows) {
  const auto x = test::random_floats(5 * 19, 21, -100, 100);  // 19 columns: vector body + tail
  for (const ops::CpuLevel lv : levels()) {
    LevelGuard guard;
    ops::set_cpu_level(lv);
    const std::string level = ops::cpu_level_name(lv);
    for (DType t : {DType::F32, DType::BF16, DType::F16}) {
      std::vector<uint16_t> h(5 * 20);
      std::vector<float> f(5 * 20);
      void* dst = t == DType::F32 ? static_cast<void*>(f.data()) : static_cast<void*>(h.data());
      ops::round_rows(x.data(), 19, 5, 19, dst, t, 20);  // stride 20: one padding value per row
      ops::TypedRows r{dst, t, 20};
      std::vector<float> back(5 * 19);
      ops::widen_rows(r, 5, 19, back.data(), 19);
      const Stored want = store(x, t);
      for (size_t i = 0; i < back.size(); ++i) ASSERT_EQ(back[i], want.f32[i]) << level << " " << i;
    }
  }
  ops::TypedRows bad{x.data(), DType::I32, 1};
  std::vector<float> out(1);
  EXPECT_THROW(ops::widen_rows(bad, 1, 1, out.data(), 1), Error);
}

}  // namespace
}  // namespace mlar
