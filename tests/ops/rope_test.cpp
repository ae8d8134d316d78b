#include "ops/rope.h"

#include <gtest/gtest.h>

#include <complex>

#include "scalar_reference.h"

namespace mlar {
namespace {

// Pair i of a head as a complex number, multiplied by e^{i p w_i}.
std::vector<double> scalar_rope(const std::vector<float>& x, int64_t n, int64_t heads, int64_t d,
                                const std::vector<int64_t>& pos, const std::vector<float>& f, bool half) {
  std::vector<double> y(x.begin(), x.end());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d / 2; ++i) {
        const int64_t base = (t * heads + h) * d;
        const int64_t re = base + (half ? i : 2 * i), im = base + (half ? i + d / 2 : 2 * i + 1);
        const std::complex<double> z(x[re], x[im]);
        const auto r = z * std::polar(1.0, double(pos[t]) * f[i]);
        y[re] = r.real();
        y[im] = r.imag();
      }
  return y;
}

std::vector<float> freqs(int64_t d) {
  std::vector<float> f(d / 2);
  for (int64_t i = 0; i < d / 2; ++i) f[i] = float(std::pow(10000.0, -2.0 * i / d));
  return f;
}

TEST(Rope, BothLayoutsMatchComplexRotation) {
  const int64_t n = 5, heads = 3, d = 16;
  const std::vector<int64_t> pos{0, 1, 7, 100, 4095};
  const auto f = freqs(d);
  const auto x = test::random_floats(n * heads * d, 9);
  for (bool half : {true, false}) {
    auto y = x;
    ops::rope(y.data(), n, heads, d, pos.data(), f.data(), half ? ops::RopePairs::Half : ops::RopePairs::Interleaved);
    EXPECT_LE(test::rel_diff(y, scalar_rope(x, n, heads, d, pos, f, half)), 2e-6) << "half " << half;
  }
}

TEST(Rope, StridedRotatesOnlyTheAddressedPart) {
  // Rows of [4 nope | 2 heads x 8 rope] per head block of 20, two heads per token, plus 3 extra floats per token.
  const int64_t n = 3, heads = 2, d = 8, head_stride = 20, token_stride = 2 * 20 + 3, off = 4;
  const std::vector<int64_t> pos{2, 9, 30};
  const auto f = freqs(d);
  const auto x = test::random_floats(n * token_stride, 3);
  auto y = x;
  ops::rope(y.data() + off, n, heads, d, head_stride, token_stride, pos.data(), f.data(), ops::RopePairs::Half);
  // Pack the addressed parts and compare with the contiguous op.
  std::vector<float> packed, rotated;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t c = 0; c < d; ++c) {
        packed.push_back(x[t * token_stride + h * head_stride + off + c]);
        rotated.push_back(y[t * token_stride + h * head_stride + off + c]);
      }
  EXPECT_LE(test::rel_diff(rotated, scalar_rope(packed, n, heads, d, pos, f, true)), 2e-6);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < token_stride; ++c) {
      const int64_t in_head = c % head_stride;
      const bool addressed = c < heads * head_stride && in_head >= off && in_head < off + d;
      if (!addressed) {
        EXPECT_EQ(y[t * token_stride + c], x[t * token_stride + c]);
      }
    }
}

TEST(Rope, ScoresDependOnlyOnRelativePosition) {
  const int64_t d = 32;
  const auto f = freqs(d);
  const auto q = test::random_floats(d, 1), k = test::random_floats(d, 2);
  auto score = [&](int64_t m, int64_t nn) {
    auto a = q, b = k;
    ops::rope(a.data(), 1, 1, d, &m, f.data(), ops::RopePairs::Interleaved);
    ops::rope(b.data(), 1, 1, d, &nn, f.data(), ops::RopePairs::Interleaved);
    double s = 0;
    for (int64_t i = 0; i < d; ++i) s += double(a[i]) * b[i];
    return s;
  };
  EXPECT_NEAR(score(3, 10), score(103, 110), 1e-4);
  EXPECT_NEAR(score(0, 5), score(1000, 1005), 1e-4);
}

}  // namespace
}  // namespace mlar
