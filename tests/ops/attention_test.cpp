#include "ops/attention.h"

#include <gtest/gtest.h>

#include "ops/threads.h"
#include "scalar_reference.h"

namespace mlar {
namespace {

// Straight loops over (query, head): scores over keys [0, q_start + i], softmax, weighted sum.
std::vector<double> scalar_attention(const std::vector<float>& q, const std::vector<float>& k,
                                     const std::vector<float>& v, const ops::AttentionDims& a) {
  const int64_t g = a.n_heads / a.n_kv_heads;
  const int64_t qs = a.q_stride ? a.q_stride : a.n_heads * a.dk, ks = a.k_stride ? a.k_stride : a.n_kv_heads * a.dk;
  const int64_t vs = a.v_stride ? a.v_stride : a.n_kv_heads * a.dv;
  std::vector<double> out(static_cast<size_t>(a.n_q * a.n_heads * a.dv), 0.0);
  for (int64_t i = 0; i < a.n_q; ++i)
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t j = h / g, nk = a.q_start + i + 1;
      std::vector<double> s(nk);
      double m = -1e300, z = 0;
      for (int64_t t = 0; t < nk; ++t) {
        double dot = 0;
        for (int64_t c = 0; c < a.dk; ++c) dot += double(q[i * qs + h * a.dk + c]) * k[t * ks + j * a.dk + c];
        s[t] = dot * a.scale;
        m = std::max(m, s[t]);
      }
      for (auto& e : s) z += (e = std::exp(e - m));
      for (int64_t t = 0; t < nk; ++t)
        for (int64_t c = 0; c < a.dv; ++c) out[(i * a.n_heads + h) * a.dv + c] += s[t] / z * v[t * vs + j * a.dv + c];
    }
  return out;
}

struct Case {
  int64_t n_q, heads, kv_heads, dk, dv, q_start, pad;
};

class AttentionCases : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionCases, MatchesScalar) {
  const Case c = GetParam();
  ops::AttentionDims a;
  a.n_q = c.n_q;
  a.n_heads = c.heads;
  a.n_kv_heads = c.kv_heads;
  a.dk = c.dk;
  a.dv = c.dv;
  a.q_start = c.q_start;
  a.scale = 1.0f / std::sqrt(float(c.dk));
  if (c.pad) {  // rows wider than the heads (e.g. K inside a [latent | k_pe] row)
    a.q_stride = c.heads * c.dk + c.pad;
    a.k_stride = c.kv_heads * c.dk + c.pad;
    a.v_stride = c.kv_heads * c.dv + c.pad;
  }
  const int64_t nk = c.q_start + c.n_q;
  const int64_t qs = a.q_stride ? a.q_stride : c.heads * c.dk, ks = a.k_stride ? a.k_stride : c.kv_heads * c.dk,
                vs = a.v_stride ? a.v_stride : c.kv_heads * c.dv;
  const auto q = test::random_floats(c.n_q * qs, 1, -2, 2), k = test::random_floats(nk * ks, 2, -2, 2),
             v = test::random_floats(nk * vs, 3);
  std::vector<float> out(static_cast<size_t>(c.n_q * c.heads * c.dv));
  ops::causal_attention(q.data(), k.data(), v.data(), out.data(), a);
  EXPECT_LE(test::rel_diff(out, scalar_attention(q, k, v, a)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Cases, AttentionCases,
                         ::testing::Values(Case{1, 8, 4, 8, 8, 0, 0},        // first token
                                           Case{1, 16, 4, 64, 64, 300, 0},   // decode with a long cache
                                           Case{37, 6, 2, 16, 16, 0, 0},     // prefill (BLAS path)
                                           Case{9, 6, 2, 16, 16, 20, 0},     // chunk after a cache
                                           Case{12, 4, 1, 24, 8, 5, 3},      // MQA, dk != dv, padded rows
                                           Case{64, 12, 12, 32, 32, 64, 0},  // MHA, parallel path
                                           Case{5, 3, 3, 10, 6, 2, 7},
                                           Case{40, 4, 1, 24, 8, 5, 3},       // BLAS path: MQA, dk != dv, padded
                                           Case{130, 8, 2, 16, 16, 70, 0}));  // BLAS path: 3 blocks after a cache

TEST(Attention, OutStrideLeavesGapsUntouched) {
  ops::AttentionDims a;
  a.n_q = 3;
  a.n_heads = 2;
  a.n_kv_heads = 1;
  a.dk = a.dv = 4;
  a.out_stride = 10;
  a.scale = 0.5f;
  const auto q = test::random_floats(3 * 8, 4), k = test::random_floats(3 * 4, 5), v = test::random_floats(3 * 4, 6);
  std::vector<float> out(30, 42.0f);
  ops::causal_attention(q.data(), k.data(), v.data(), out.data(), a);
  const auto ref = scalar_attention(q, k, v, a);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t c = 0; c < 8; ++c) EXPECT_NEAR(out[i * 10 + c], ref[i * 8 + c], 1e-5);
    EXPECT_EQ(out[i * 10 + 8], 42.0f);
    EXPECT_EQ(out[i * 10 + 9], 42.0f);
  }
}

}  // namespace
}  // namespace mlar
