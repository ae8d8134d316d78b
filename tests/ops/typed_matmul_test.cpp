#include "ops/typed_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu_features.h"
#include "ops/threads.h"
#include "scalar_reference.h"
#include "util/error.h"
#include "util/half.h"

namespace mlar {
namespace {

using ops::CpuLevel;

// Every level this machine runs, lowest first.
std::vector<CpuLevel> levels() {
  std::vector<CpuLevel> out;
  for (CpuLevel l : {CpuLevel::Scalar, CpuLevel::Avx2, CpuLevel::Avx512})
    if (l <= ops::cpu_max_level()) out.push_back(l);
  return out;
}

// Restores the dispatch level a test changed.
struct LevelGuard {
  CpuLevel saved = ops::cpu_active_level();
  ~LevelGuard() { ops::set_cpu_level(saved); }
};

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Weights stored as `t` (rounded from w by util/half.h) and the same values widened.
struct Stored {
  std::vector<uint8_t> bytes;
  std::vector<float> widened;
};

Stored store(const std::vector<float>& w, DType t) {
  Stored s;
  s.widened.resize(w.size());
  if (t == DType::F32) {
    s.bytes.resize(w.size() * 4);
    std::memcpy(s.bytes.data(), w.data(), s.bytes.size());
    s.widened = w;
    return s;
  }
  s.bytes.resize(w.size() * 2);
  auto* h = reinterpret_cast<uint16_t*>(s.bytes.data());
  for (size_t i = 0; i < w.size(); ++i) {
    h[i] = t == DType::BF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
    s.widened[i] = t == DType::BF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
  }
  return s;
}

struct Shape3 {
  int64_t n, in, out;
};

std::vector<Shape3> shapes() {
  std::vector<Shape3> v;
  for (int64_t in : {1, 7, 33, 4096 + 3})
    for (int64_t out : {1, 5, 129})
      for (int64_t n : {1, 2, 3, 17, 70}) v.push_back({n, in, out});
  v.push_back({260, 65, 37});  // more rows than one streamed pass (AVX-512: 128)
  return v;
}

// Every level, dtype, shape, with and without bias and row strides, against a double
// reference on the widened weights: |y - ref| <= 1e-5 * (sum_i |x_i w_i| + |b|) + 1e-6.
TEST(TypedMatmul, MatchesDoubleReferenceOnWidenedWeights) {
  LevelGuard guard;
  int checked = 0;
  for (const auto& [n, in, out] : shapes()) {
    const auto x = test::random_floats(n * in, 11 + n), w = test::random_floats(out * in, 12 + in, -2.0f, 2.0f),
               b = test::random_floats(out, 13);
    for (DType t : {DType::F32, DType::BF16, DType::F16}) {
      const Stored s = store(w, t);
      std::vector<double> ref(static_cast<size_t>(n * out)), mag(ref.size());
      for (int64_t r = 0; r < n; ++r)
        for (int64_t o = 0; o < out; ++o) {
          double acc = 0, m = 0;
          for (int64_t i = 0; i < in; ++i) {
            const double p = double(x[r * in + i]) * s.widened[o * in + i];
            acc += p;
            m += std::abs(p);
          }
          ref[r * out + o] = acc;
          mag[r * out + o] = m;
        }
      for (CpuLevel level : levels()) {
        ops::set_cpu_level(level);
        for (bool with_bias : {false, true})
          for (bool strided : {false, true}) {
            const int64_t xs = strided ? in + 3 : in, ys = strided ? out + 2 : out;
            std::vector<float> xb(static_cast<size_t>(n * xs), 1e30f);
            for (int64_t r = 0; r < n; ++r) std::memcpy(&xb[r * xs], &x[r * in], in * 4);
            std::vector<float> y(static_cast<size_t>(n * ys), -7.0f);
            ops::matmul_typed(xb.data(), xs, s.bytes.data(), t, with_bias ? b.data() : nullptr, y.data(), ys, n, in,
                              out);
            double worst = 0;
            for (int64_t r = 0; r < n; ++r) {
              for (int64_t o = 0; o < out; ++o) {
                const double bias = with_bias ? b[o] : 0.0;
                const double tol = 1e-5 * (mag[r * out + o] + std::abs(bias)) + 1e-6;
                const double err = std::abs(y[r * ys + o] - (ref[r * out + o] + bias));
                worst = std::max(worst, err / tol);
              }
              for (int64_t o = out; o < ys; ++o) ASSERT_EQ(y[r * ys + o], -7.0f) << "wrote past a row";
            }
            EXPECT_LE(worst, 1.0) << ops::cpu_level() << " " << dtype_name(t) << " n=" << n << " in=" << in
                                  << " out=" << out << " bias " << with_bias << " strided " << strided;
            ++checked;
          }
      }
    }
  }
  EXPECT_EQ(checked, 61 * 3 * 4 * static_cast<int>(levels().size()));
}

// Up to 4 activation rows, W is streamed by the same kernel for every dtype: BF16 and
// F16 give bit for bit the F32 result on the widened weights (no rounding of x).
TEST(TypedMatmul, StreamedRowsEqualF32KernelOnWidenedWeights) {
  LevelGuard guard;
  const int64_t in = 1000 + 7, out = 300;
  const auto w = test::random_floats(out * in, 21);
  for (int64_t n : {1, 2, 3, 4}) {
    const auto x = test::random_floats(n * in, 22 + n);
    for (DType t : {DType::BF16, DType::F16}) {
      const Stored s = store(w, t);
      for (CpuLevel level : levels()) {
        ops::set_cpu_level(level);
        std::vector<float> y(static_cast<size_t>(n * out)), y32(y.size());
        ops::matmul_typed(x.data(), in, s.bytes.data(), t, nullptr, y.data(), out, n, in, out);
        ops::matmul_typed(x.data(), in, s.widened.data(), DType::F32, nullptr, y32.data(), out, n, in, out);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_EQ(bits(y[i]), bits(y32[i])) << ops::cpu_level() << " " << dtype_name(t) << " n=" << n << " @" << i;
      }
    }
  }
}

// The streamed path splits output rows across threads; each row is one thread's sum.
TEST(TypedMatmul, DecodeSameWithOneOrTwoThreads) {
  const int64_t in = 2048 + 5, out = 1031;
  const auto x = test::random_floats(in, 31), w = test::random_floats(out * in, 32);
  const Stored s = store(w, DType::BF16);
  std::vector<float> y1(out), y2(out);
  const int saved = ops::cpu_threads();
  ops::set_cpu_threads(1);
  ops::matmul_typed(x.data(), in, s.bytes.data(), DType::BF16, nullptr, y1.data(), out, 1, in, out);
  ops::set_cpu_threads(2);
  ops::matmul_typed(x.data(), in, s.bytes.data(), DType::BF16, nullptr, y2.data(), out, 1, in, out);
  ops::set_cpu_threads(saved);
  for (int64_t i = 0; i < out; ++i) ASSERT_EQ(bits(y1[i]), bits(y2[i])) << i;
}

TEST(TypedMatmul, UnsupportedDtypeNamesIt) {
  std::vector<float> x(8, 1.0f), y(8);
  std::vector<int8_t> w(64, 1);
  try {
    ops::matmul_typed(x.data(), 8, w.data(), DType::I8, nullptr, y.data(), 8, 1, 8, 8);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("I8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::to_f32(w.data(), DType::F64, y.data(), 1), Error);
  EXPECT_THROW(ops::from_f32(x.data(), DType::U16, w.data(), 1), Error);
  const int32_t id = 0;
  EXPECT_THROW(ops::gather_rows_typed(w.data(), DType::F8_E4M3, &id, y.data(), 1, 8), Error);
}

// Every one of the 65536 half and bfloat16 patterns, from an odd offset and length so
// the vector loops meet unaligned starts and tails.
TEST(TypedConvert, ToF32BitExactForEveryPattern) {
  LevelGuard guard;
  std::vector<uint16_t> all(65536 + 1);
  for (uint32_t i = 0; i < 65536; ++i) all[i + 1] = static_cast<uint16_t>(i);
  int64_t checked = 0;
  for (CpuLevel level : levels()) {
    ops::set_cpu_level(level);
    for (DType t : {DType::BF16, DType::F16})
      for (int64_t len : {int64_t{65536}, int64_t{65536 - 13}, int64_t{5}}) {
        std::vector<float> out(static_cast<size_t>(len));
        ops::to_f32(all.data() + 1, t, out.data(), len);
        for (int64_t i = 0; i < len; ++i) {
          const uint16_t h = all[i + 1];
          const float want = t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
          ASSERT_EQ(bits(out[i]), bits(want)) << ops::cpu_level() << " " << dtype_name(t) << " 0x" << std::hex << h;
        }
        checked += len;
      }
  }
  EXPECT_EQ(checked, 2 * (65536 + 65523 + 5) * static_cast<int64_t>(levels().size()));
}

// Random bit patterns (NaN payloads, subnormals, huge values) plus the edge cases of
// both roundings, bit-exact against util/half.h; 2^21 + 3 values so large inputs take
// the threaded path.
TEST(TypedConvert, FromF32BitExact) {
  LevelGuard guard;
  std::vector<float> v;
  const float inf = std::numeric_limits<float>::infinity();
  for (float f : {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::signaling_NaN(), std::numeric_limits<float>::denorm_min(),
                  -std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 65504.0f, 65519.99f, 65520.0f,
                  -65520.0f, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 8.940697e-08f, 1.0f,
                  1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048})
    v.push_back(f);
  for (uint32_t u : {0x7f800001u, 0xff812345u, 0x7fffffffu, 0x7fbfffffu, 0x3f80ffffu, 0x3f808000u, 0x3f818000u,
                     0x477fe000u, 0x477ff000u, 0x33000000u, 0x33000001u, 0x387fe000u, 0x387ff000u, 0x00400000u})
    v.push_back(from_bits(u));
  std::mt19937 rng(7);
  while (v.size() < (size_t{1} << 21) + 3) {
    v.push_back(from_bits(rng()));
    std::uniform_real_distribution<float> small(-70000.0f, 70000.0f);
    v.push_back(small(rng) * (rng() % 2 ? 1.0f : 1e-6f));
  }
  for (CpuLevel level : levels()) {
    ops::set_cpu_level(level);
    for (DType t : {DType::BF16, DType::F16})
      for (size_t len : {v.size(), size_t{37}}) {
        std::vector<uint16_t> out(len);
        ops::from_f32(v.data(), t, out.data(), static_cast<int64_t>(len));
        for (size_t i = 0; i < len; ++i) {
          const uint16_t want = t == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
          ASSERT_EQ(out[i], want) << ops::cpu_level() << " " << dtype_name(t) << " 0x" << std::hex << bits(v[i]);
        }
      }
  }
}

TEST(TypedConvert, F32CopiesAndGatherWidensRows) {
  LevelGuard guard;
  const int64_t rows = 10, dim = 37;
  const auto table = test::random_floats(rows * dim, 41);
  const std::vector<int32_t> ids{3, 0, 9, 3};
  for (CpuLevel level : levels()) {
    ops::set_cpu_level(level);
    for (DType t : {DType::F32, DType::BF16, DType::F16}) {
      const Stored s = store(table, t);
      std::vector<float> out(ids.size() * dim, -1.0f);
      ops::gather_rows_typed(s.bytes.data(), t, ids.data(), out.data(), static_cast<int64_t>(ids.size()), dim);
      for (size_t r = 0; r < ids.size(); ++r)
        for (int64_t i = 0; i < dim; ++i)
          ASSERT_EQ(bits(out[r * dim + i]), bits(s.widened[ids[r] * dim + i])) << dtype_name(t) << " row " << r;
      std::vector<uint8_t> back(s.bytes.size());
      ops::from_f32(s.widened.data(), t, back.data(), rows * dim);
      EXPECT_EQ(back, s.bytes) << dtype_name(t) << ": widened values narrow back to themselves";
    }
  }
}

TEST(CpuLevel, ClampsToTheCpuAndParsesNames) {
  LevelGuard guard;
  EXPECT_EQ(ops::set_cpu_level(CpuLevel::Avx512Bf16), ops::cpu_max_level());  // the highest level: clamped
  EXPECT_EQ(ops::cpu_level(), ops::cpu_level_name(ops::cpu_max_level()));
  EXPECT_EQ(ops::set_cpu_level(CpuLevel::Scalar), CpuLevel::Scalar);
  EXPECT_EQ(ops::cpu_level(), "scalar");
  EXPECT_EQ(ops::parse_cpu_level("avx2", "MLAR_CPU"), CpuLevel::Avx2);
  EXPECT_EQ(ops::parse_cpu_level("avx512bf16", "MLAR_CPU"), CpuLevel::Avx512Bf16);
  EXPECT_THROW(ops::parse_cpu_level("sse4", "MLAR_CPU"), Error);
}

}  // namespace
}  // namespace mlar
