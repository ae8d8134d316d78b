// The ops MLA added (strided matmul and RMSNorm, per-head matmul, strided head copies,
// shared-KV attention) against scalar loops.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/elementwise.h"
#include "ops/head_matmul.h"
#include "ops/matmul.h"
#include "ops/rmsnorm.h"
#include "ops/scalar_reference.h"
#include "ops/shared_kv_attention.h"

namespace mlar {
namespace {

TEST(MlaOps, MatmulStridedWritesOnlyItsColumns) {
  const int64_t n = 5, in = 7, out = 130, xs = 11, ys = 140;
  const auto x = test::random_floats(n * xs, 1), w = test::random_floats(out * in, 2), b = test::random_floats(out, 3);
  std::vector<float> y(size_t(n * ys), 42.0f);
  ops::matmul_strided(x.data(), xs, w.data(), b.data(), y.data(), ys, n, in, out);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t o = 0; o < out; ++o) {
      double ref = b[o];
      for (int64_t i = 0; i < in; ++i) ref += double(x[t * xs + i]) * w[o * in + i];
      EXPECT_NEAR(y[t * ys + o], ref, 1e-5);
    }
    for (int64_t o = out; o < ys; ++o) EXPECT_EQ(y[t * ys + o], 42.0f);
  }
}

TEST(MlaOps, RmsnormStrided) {
  const int64_t n = 3, dim = 6, s = 9;
  const auto x = test::random_floats(n * s, 4), w = test::random_floats(dim, 5);
  std::vector<float> y = x;
  ops::rmsnorm_strided(y.data(), s, w.data(), y.data(), s, n, dim, 1e-6f);
  for (int64_t t = 0; t < n; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[t * s + i]) * x[t * s + i];
    const double inv = 1 / std::sqrt(ss / dim + 1e-6);
    for (int64_t i = 0; i < dim; ++i) EXPECT_NEAR(y[t * s + i], x[t * s + i] * inv * w[i], 1e-5);
    for (int64_t i = dim; i < s; ++i) EXPECT_EQ(y[t * s + i], x[t * s + i]);
  }
}

TEST(MlaOps, CopyHeadsBroadcastsAndGathers) {
  const int64_t n = 4, heads = 3, width = 2;
  const auto src = test::random_floats(n * 5, 6);
  std::vector<float> dst(size_t(n * heads * 4), 0.0f);
  ops::copy_heads(src.data() + 1, 5, 0, dst.data() + 2, heads * 4, 4, n, heads, width);  // broadcast
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      EXPECT_EQ(dst[t * 12 + h * 4 + 2], src[t * 5 + 1]);
      EXPECT_EQ(dst[t * 12 + h * 4 + 3], src[t * 5 + 2]);
      EXPECT_EQ(dst[t * 12 + h * 4], 0.0f);
    }
}

struct HeadCase {
  int64_t n, heads, in, out;
  bool in_out, shared;
};

class HeadMatmul : public ::testing::TestWithParam<HeadCase> {};

TEST_P(HeadMatmul, MatchesScalar) {
  const HeadCase c = GetParam();
  ops::HeadMatmulDims d;
  d.n = c.n;
  d.heads = c.heads;
  d.in = c.in;
  d.out = c.out;
  d.x_head_stride = c.shared ? 0 : c.in + 1;
  d.x_stride = c.heads * (c.in + 1) + 3;
  d.y_head_stride = c.out + 2;
  d.y_stride = c.heads * (c.out + 2) + 1;
  d.w_head_stride = c.in * c.out + 5;
  d.w_in_out = c.in_out;
  const auto x = test::random_floats(c.n * d.x_stride, 7), w = test::random_floats(c.heads * d.w_head_stride, 8);
  std::vector<float> y(size_t(c.n * d.y_stride), 0.0f);
  ops::matmul_heads(x.data(), w.data(), y.data(), d);
  double worst = 0;
  for (int64_t t = 0; t < c.n; ++t)
    for (int64_t h = 0; h < c.heads; ++h)
      for (int64_t o = 0; o < c.out; ++o) {
        double ref = 0;
        for (int64_t i = 0; i < c.in; ++i) {
          const float wv = c.in_out ? w[h * d.w_head_stride + i * c.out + o] : w[h * d.w_head_stride + o * c.in + i];
          ref += double(wv) * x[t * d.x_stride + h * d.x_head_stride + i];
        }
        worst = std::max(worst, std::abs(ref - y[t * d.y_stride + h * d.y_head_stride + o]));
      }
  EXPECT_LE(worst, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Cases, HeadMatmul,
                         ::testing::Values(HeadCase{1, 4, 8, 12, false, false}, HeadCase{1, 4, 8, 12, true, false},
                                           HeadCase{300, 3, 16, 6, false, true}, HeadCase{300, 3, 6, 16, true, false},
                                           HeadCase{7, 16, 32, 64, false, false}));

struct SharedCase {
  int64_t n_q, heads, dk, dv, q_start, k_offset;
};

class SharedKv : public ::testing::TestWithParam<SharedCase> {};

// Keys and values share rows: key = row[k_offset, k_offset + dk), value = row[0, dv).
TEST_P(SharedKv, MatchesScalar) {
  const SharedCase c = GetParam();
  const int64_t T = c.q_start + c.n_q, row = std::max(c.k_offset + c.dk, c.dv);
  ops::AttentionDims a;
  a.n_q = c.n_q;
  a.n_heads = c.heads;
  a.n_kv_heads = 1;
  a.dk = c.dk;
  a.dv = c.dv;
  a.k_stride = row;
  a.v_stride = row;
  a.q_start = c.q_start;
  a.scale = 0.3f;
  const auto q = test::random_floats(c.n_q * c.heads * c.dk, 9, -2, 2), kv = test::random_floats(T * row, 10, -2, 2);
  std::vector<float> out(size_t(c.n_q * c.heads * c.dv)), scores(size_t(ops::shared_kv_scores_size(a)));
  ops::shared_kv_attention(q.data(), kv.data() + c.k_offset, kv.data(), out.data(), a, scores.data());
  std::vector<double> ref(out.size(), 0.0);
  for (int64_t i = 0; i < c.n_q; ++i)
    for (int64_t h = 0; h < c.heads; ++h) {
      const int64_t nk = c.q_start + i + 1;
      std::vector<double> s(static_cast<size_t>(nk));
      double mx = -1e300, z = 0;
      for (int64_t t = 0; t < nk; ++t) {
        double dot = 0;
        for (int64_t k = 0; k < c.dk; ++k)
          dot += double(q[(i * c.heads + h) * c.dk + k]) * kv[t * row + c.k_offset + k];
        s[t] = dot * a.scale;
        mx = std::max(mx, s[t]);
      }
      for (auto& e : s) z += (e = std::exp(e - mx));
      for (int64_t t = 0; t < nk; ++t)
        for (int64_t k = 0; k < c.dv; ++k) ref[(i * c.heads + h) * c.dv + k] += s[t] / z * kv[t * row + k];
    }
  EXPECT_LE(test::rel_diff(out, ref), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Cases, SharedKv,
                         ::testing::Values(SharedCase{1, 8, 12, 10, 0, 10},     // first token
                                           SharedCase{1, 16, 96, 64, 700, 0},   // decode, long cache, [c | k_pe] keys
                                           SharedCase{1, 16, 32, 64, 700, 64},  // keys k_pe only
                                           SharedCase{5, 4, 20, 16, 40, 0},     // short chunk after a cache
                                           SharedCase{15, 6, 24, 16, 3, 2},     // short prefill
                                           SharedCase{40, 6, 24, 16, 9, 2}));   // long batch: blocked path

}  // namespace
}  // namespace mlar
