// Every training op's backward against central differences of an independent
// double-precision forward written here (scalar loops, no ops, no BLAS). Each check
// differentiates the scalar loss L = sum_i r_i y_i (r random), so dL/dy = r.
// Tolerance: max |analytic - reference| <= 1e-5 x the reference's largest entry
// (the analytic side is float32; the reference is exact to ~1e-9).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "runtime/rope_table.h"
#include "train/grad_check.h"
#include "train/ops_attention.h"
#include "train/ops_embedding.h"
#include "train/ops_linear.h"
#include "train/ops_loss.h"
#include "train/ops_rmsnorm.h"
#include "train/ops_rope.h"
#include "train/ops_swiglu.h"

namespace mlar::test {
namespace {

using train::AttnDims;
using train::LinearDims;
using train::RmsNormDims;

constexpr double kTol = 1e-5;

// ---------------------------------------------------------------- linear

Vec ref_linear(const Vec& x, const Vec& w, const Vec& b, const LinearDims& d) {
  Vec y(static_cast<size_t>(d.n * d.ys()), 0.0);
  for (int64_t t = 0; t < d.n; ++t)
    for (int64_t o = 0; o < d.out; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (int64_t i = 0; i < d.in; ++i) s += w[o * d.in + i] * x[t * d.xs() + i];
      y[t * d.ys() + o] = s;
    }
  return y;
}

TEST(OpsGrad, LinearStridedWithBias) {
  LinearDims d{5, 7, 6, 9, 8};
  auto x = rand_floats(d.n * d.xs(), 1), w = rand_floats(d.out * d.in, 2), b = rand_floats(d.out, 3);
  auto r = rand_floats(d.n * d.ys(), 4);
  // Padding of the strided rows does not enter the loss.
  for (int64_t t = 0; t < d.n; ++t)
    for (int64_t o = d.out; o < d.ys(); ++o) r[t * d.ys() + o] = 0;

  std::vector<float> y(r.size(), 0.0f);
  train::linear_forward(x.data(), w.data(), b.data(), y.data(), d);
  const Vec yr = ref_linear(to_double(x), to_double(w), to_double(b), d);
  for (int64_t t = 0; t < d.n; ++t)
    for (int64_t o = 0; o < d.out; ++o) EXPECT_NEAR(y[t * d.ys() + o], yr[t * d.ys() + o], 1e-5);

  std::vector<float> dx(x.size(), 7.0f), dw(w.size(), 0.5f), db(b.size(), -0.25f);
  train::linear_backward(x.data(), w.data(), r.data(), dx.data(), false, dw.data(), db.data(), d);
  for (auto& v : dw) v -= 0.5f;  // accumulated onto what was there
  for (auto& v : db) v += 0.25f;
  const Vec rd = to_double(r);
  const Vec gx = numeric_grad(to_double(x), [&](const Vec& v) { return dot(rd, ref_linear(v, to_double(w), to_double(b), d)); });
  const Vec gw = numeric_grad(to_double(w), [&](const Vec& v) { return dot(rd, ref_linear(to_double(x), v, to_double(b), d)); });
  const Vec gb = numeric_grad(to_double(b), [&](const Vec& v) { return dot(rd, ref_linear(to_double(x), to_double(w), v, d)); });
  for (int64_t t = 0; t < d.n; ++t)  // strided padding of dx untouched
    for (int64_t i = d.in; i < d.xs(); ++i) EXPECT_EQ(dx[t * d.xs() + i], 7.0f);
  for (int64_t t = 0; t < d.n; ++t)
    for (int64_t i = d.in; i < d.xs(); ++i) dx[t * d.xs() + i] = static_cast<float>(gx[t * d.xs() + i]);
  EXPECT_LT(grad_rel_err(dx, gx), kTol);
  EXPECT_LT(grad_rel_err(dw, gw), kTol);
  EXPECT_LT(grad_rel_err(db, gb), kTol);

  // accumulate_dx adds onto dx.
  std::vector<float> dx2(x.size(), 1.0f);
  train::linear_backward(x.data(), w.data(), r.data(), dx2.data(), true, nullptr, nullptr, d);
  for (int64_t t = 0; t < d.n; ++t)
    for (int64_t i = 0; i < d.in; ++i) EXPECT_NEAR(dx2[t * d.xs() + i] - 1.0f, dx[t * d.xs() + i], 1e-6);
}

TEST(OpsGrad, LinearLargeParallel) {
  // Big enough that the row and output splits run on several threads.
  LinearDims d{300, 64, 200};
  auto x = rand_floats(d.n * d.in, 5), w = rand_floats(d.out * d.in, 6), r = rand_floats(d.n * d.out, 7);
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(d.out, 0.0f);
  train::linear_backward(x.data(), w.data(), r.data(), dx.data(), false, dw.data(), db.data(), d);
  // dx = r W, dW = r^T x, db = column sums of r, in double.
  double ex = 0, sx = 0, ew = 0, sw = 0, eb = 0, sb = 0;
  for (int64_t t = 0; t < d.n; ++t)
    for (int64_t i = 0; i < d.in; ++i) {
      double s = 0;
      for (int64_t o = 0; o < d.out; ++o) s += double(r[t * d.out + o]) * w[o * d.in + i];
      ex = std::max(ex, std::abs(s - dx[t * d.in + i]));
      sx = std::max(sx, std::abs(s));
    }
  for (int64_t o = 0; o < d.out; ++o) {
    double sbo = 0;
    for (int64_t t = 0; t < d.n; ++t) sbo += r[t * d.out + o];
    eb = std::max(eb, std::abs(sbo - db[o]));
    sb = std::max(sb, std::abs(sbo));
    for (int64_t i = 0; i < d.in; ++i) {
      double s = 0;
      for (int64_t t = 0; t < d.n; ++t) s += double(r[t * d.out + o]) * x[t * d.in + i];
      ew = std::max(ew, std::abs(s - dw[o * d.in + i]));
      sw = std::max(sw, std::abs(s));
    }
  }
  EXPECT_LT(ex / sx, 1e-5);
  EXPECT_LT(ew / sw, 1e-5);
  EXPECT_LT(eb / sb, 1e-6);
}

// ---------------------------------------------------------------- rmsnorm

Vec ref_rmsnorm(const Vec& x, const Vec& w, const RmsNormDims& d) {
  Vec y(static_cast<size_t>(d.n * d.ys()), 0.0);
  for (int64_t t = 0; t < d.n; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < d.dim; ++i) ss += x[t * d.xs() + i] * x[t * d.xs() + i];
    const double inv = 1.0 / std::sqrt(ss / double(d.dim) + double(d.eps));
    for (int64_t i = 0; i < d.dim; ++i) y[t * d.ys() + i] = x[t * d.xs() + i] * inv * w[i];
  }
  return y;
}

TEST(OpsGrad, RmsNormStrided) {
  RmsNormDims d{4, 12, 14, 13, 1e-5f};
  auto x = rand_floats(d.n * d.xs(), 11), w = rand_floats(d.dim, 12, 0.3, 1.0);
  auto r = rand_floats(d.n * d.ys(), 13);
  for (int64_t t = 0; t < d.n; ++t)
    for (int64_t i = d.dim; i < d.ys(); ++i) r[t * d.ys() + i] = 0;
  std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f);
  train::rmsnorm_backward(x.data(), w.data(), r.data(), dx.data(), false, dw.data(), d);
  const Vec rd = to_double(r);
  const Vec gx = numeric_grad(to_double(x), [&](const Vec& v) { return dot(rd, ref_rmsnorm(v, to_double(w), d)); });
  const Vec gw = numeric_grad(to_double(w), [&](const Vec& v) { return dot(rd, ref_rmsnorm(to_double(x), v, d)); });
  EXPECT_LT(grad_rel_err(dx, gx), kTol);
  EXPECT_LT(grad_rel_err(dw, gw), kTol);
  // A large row count exercises the parallel split.
  RmsNormDims big{2000, 64, 0, 0, 1e-5f};
  auto bx = rand_floats(big.n * big.dim, 14), bw = rand_floats(big.dim, 15, 0.3, 1.0), br = rand_floats(big.n * big.dim, 16);
  std::vector<float> bdx(bx.size()), bdw(big.dim, 0.0f);
  train::rmsnorm_backward(bx.data(), bw.data(), br.data(), bdx.data(), false, bdw.data(), big);
  // dw_i = sum_t r_ti x_ti inv_t, in double.
  Vec ref_dw(big.dim, 0.0);
  for (int64_t t = 0; t < big.n; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < big.dim; ++i) ss += double(bx[t * big.dim + i]) * bx[t * big.dim + i];
    const double inv = 1.0 / std::sqrt(ss / double(big.dim) + 1e-5);
    for (int64_t i = 0; i < big.dim; ++i) ref_dw[i] += double(br[t * big.dim + i]) * bx[t * big.dim + i] * inv;
  }
  EXPECT_LT(grad_rel_err(bdw, ref_dw), 1e-6);
}

// ---------------------------------------------------------------- rope

Vec ref_rope(Vec x, int64_t n, int64_t heads, int64_t d, int64_t hs, int64_t ts, const std::vector<int64_t>& pos,
             const std::vector<float>& f, ops::RopePairs pairs) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d / 2; ++i) {
        const int64_t a = pairs == ops::RopePairs::Half ? i : 2 * i;
        const int64_t b = pairs == ops::RopePairs::Half ? i + d / 2 : 2 * i + 1;
        double* v = x.data() + t * ts + h * hs;
        const double ang = double(pos[t]) * double(f[i]);
        const double re = v[a], im = v[b];
        v[a] = re * std::cos(ang) - im * std::sin(ang);
        v[b] = re * std::sin(ang) + im * std::cos(ang);
      }
  return x;
}

class RopeGrad : public ::testing::TestWithParam<ops::RopePairs> {};

TEST_P(RopeGrad, BackwardIsInverseRotation) {
  const int64_t n = 5, heads = 3, d = 8, hs = 10, ts = 33;
  const std::vector<int64_t> pos = {0, 3, 7, 100, 5};
  const auto f = rope_inv_freq(10000.0, d, RopeScaling{});
  auto x = rand_floats(n * ts, 21), r = rand_floats(n * ts, 22);
  // Only the rotated coordinates enter the loss.
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < ts; ++j)
      if (j >= heads * hs || j % hs >= d) r[t * ts + j] = 0;
  auto y = x;
  ops::rope(y.data(), n, heads, d, hs, ts, pos.data(), f.data(), GetParam());
  const Vec yr = ref_rope(to_double(x), n, heads, d, hs, ts, pos, f, GetParam());
  EXPECT_LT(grad_rel_err(y, yr), 1e-6);
  auto dx = r;
  train::rope_backward(dx.data(), n, heads, d, hs, ts, pos.data(), f.data(), GetParam());
  const Vec rd = to_double(r);
  const Vec gx = numeric_grad(to_double(x), [&](const Vec& v) { return dot(rd, ref_rope(v, n, heads, d, hs, ts, pos, f, GetParam())); });
  // Coordinates outside the rope part pass through unchanged (their r is 0 here).
  EXPECT_LT(grad_rel_err(dx, gx), kTol);
}

INSTANTIATE_TEST_SUITE_P(Layouts, RopeGrad, ::testing::Values(ops::RopePairs::Half, ops::RopePairs::Interleaved));

// ---------------------------------------------------------------- attention

// out [rows, H, dv] (o_stride) and lse [rows, H] of causal attention per sequence.
Vec ref_attention(const Vec& q, const Vec& k, const Vec& v, const AttnDims& d, Vec* lse = nullptr) {
  Vec out(static_cast<size_t>(d.rows() * d.os()), 0.0);
  if (lse) lse->assign(static_cast<size_t>(d.rows() * d.n_heads), 0.0);
  const int64_t g = d.n_heads / d.n_kv_heads;
  for (int64_t s = 0; s < d.n_seq; ++s)
    for (int64_t h = 0; h < d.n_heads; ++h)
      for (int64_t t = 0; t < d.len; ++t) {
        const int64_t rt = s * d.len + t, j = h / g;
        Vec sc(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int64_t u = 0; u <= t; ++u) {
          const int64_t ru = s * d.len + u;
          double dd = 0;
          for (int64_t i = 0; i < d.dk; ++i) dd += q[rt * d.qs() + h * d.dk + i] * k[ru * d.ks() + j * d.dk + i];
          sc[u] = dd * d.scale;
          mx = std::max(mx, sc[u]);
        }
        double z = 0;
        for (auto& e : sc) z += (e = std::exp(e - mx));
        if (lse) (*lse)[rt * d.n_heads + h] = mx + std::log(z);
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < d.dv; ++i)
            out[rt * d.os() + h * d.dv + i] += sc[u] / z * v[(s * d.len + u) * d.vs() + j * d.dv + i];
      }
  return out;
}

// Zeroes r outside the head values of each out row (strided padding).
void mask_out_padding(std::vector<float>& r, const AttnDims& d) {
  for (int64_t t = 0; t < d.rows(); ++t)
    for (int64_t j = d.n_heads * d.dv; j < d.os(); ++j) r[t * d.os() + j] = 0;
}

// Packed gradient [rows, heads * width] back to the strided layout [rows, stride].
std::vector<float> unpack(const std::vector<float>& g, int64_t rows, int64_t width, int64_t stride) {
  std::vector<float> o(static_cast<size_t>(rows * stride), 0.0f);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t i = 0; i < width; ++i) o[t * stride + i] = g[t * width + i];
  return o;
}

struct AttnCase {
  const char* name;
  AttnDims d;
};

class AttentionGrad : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionGrad, MatchesFiniteDifferences) {
  const AttnDims d = GetParam().d;
  auto q = rand_floats(d.rows() * d.qs(), 31), k = rand_floats(d.rows() * d.ks(), 32);
  auto v = rand_floats(d.rows() * d.vs(), 33), r = rand_floats(d.rows() * d.os(), 34);
  mask_out_padding(r, d);
  std::vector<float> out(static_cast<size_t>(d.rows() * d.os()), 0.0f), lse(static_cast<size_t>(d.rows() * d.n_heads));
  train::attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), d);
  Vec ref_lse;
  const Vec ref_out = ref_attention(to_double(q), to_double(k), to_double(v), d, &ref_lse);
  EXPECT_LT(grad_rel_err(out, ref_out), 1e-5);
  EXPECT_LT(grad_rel_err(lse, ref_lse), 1e-5);

  const int64_t H = d.n_heads, J = d.n_kv_heads;
  std::vector<float> dq(static_cast<size_t>(d.rows() * H * d.dk)), dk(static_cast<size_t>(d.rows() * J * d.dk)),
      dv(static_cast<size_t>(d.rows() * J * d.dv));
  train::attention_backward(q.data(), k.data(), v.data(), lse.data(), r.data(), dq.data(), dk.data(), dv.data(), d);
  const Vec rd = to_double(r), qd = to_double(q), kd = to_double(k), vd = to_double(v);
  const Vec gq = numeric_grad(qd, [&](const Vec& x) { return dot(rd, ref_attention(x, kd, vd, d)); });
  const Vec gk = numeric_grad(kd, [&](const Vec& x) { return dot(rd, ref_attention(qd, x, vd, d)); });
  const Vec gv = numeric_grad(vd, [&](const Vec& x) { return dot(rd, ref_attention(qd, kd, x, d)); });
  EXPECT_LT(grad_rel_err(unpack(dq, d.rows(), H * d.dk, d.qs()), gq), kTol);
  EXPECT_LT(grad_rel_err(unpack(dk, d.rows(), J * d.dk, d.ks()), gk), kTol);
  EXPECT_LT(grad_rel_err(unpack(dv, d.rows(), J * d.dv, d.vs()), gv), kTol);
}

AttnDims attn_dims(int64_t n_seq, int64_t len, int64_t H, int64_t J, int64_t dk, int64_t dv, int64_t pad, float scale) {
  AttnDims d;
  d.n_seq = n_seq;
  d.len = len;
  d.n_heads = H;
  d.n_kv_heads = J;
  d.dk = dk;
  d.dv = dv;
  if (pad > 0) {
    d.q_stride = H * dk + pad;
    d.k_stride = J * dk + pad + 1;
    d.v_stride = J * dv + pad + 2;
    d.o_stride = H * dv + pad;
  }
  d.scale = scale;
  return d;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionGrad,
    ::testing::Values(AttnCase{"gqa_strided", attn_dims(2, 5, 4, 2, 6, 5, 3, 0.4f)},
                      AttnCase{"mha", attn_dims(1, 6, 3, 3, 4, 4, 0, 0.5f)},
                      AttnCase{"mqa_dk_ne_dv", attn_dims(2, 4, 3, 1, 7, 3, 2, 0.3f)},
                      AttnCase{"one_token", attn_dims(3, 1, 2, 1, 4, 4, 0, 0.5f)}),
    [](const auto& info) { return std::string(info.param.name); });

// MLA over shared rows: keys are the whole rows [c | k_pe] (dk = r + R), values the
// first r values of the same rows; the gradient of the rows is dK + [dV | 0].
TEST(OpsGrad, AttentionSharedLatentRows) {
  const int64_t r = 5, R = 4, cs = r + R;
  AttnDims d = attn_dims(2, 4, 3, 1, cs, r, 0, 0.35f);
  d.k_stride = d.v_stride = cs;
  auto q = rand_floats(d.rows() * d.qs(), 41), rows = rand_floats(d.rows() * cs, 42), rr = rand_floats(d.rows() * d.os(), 43);
  std::vector<float> out(static_cast<size_t>(d.rows() * d.os())), lse(static_cast<size_t>(d.rows() * d.n_heads));
  train::attention_forward(q.data(), rows.data(), rows.data(), out.data(), lse.data(), d);
  std::vector<float> dq(static_cast<size_t>(d.rows() * d.n_heads * cs)), dk(static_cast<size_t>(d.rows() * cs)),
      dv(static_cast<size_t>(d.rows() * r));
  train::attention_backward(q.data(), rows.data(), rows.data(), lse.data(), rr.data(), dq.data(), dk.data(), dv.data(), d);
  for (int64_t t = 0; t < d.rows(); ++t)
    for (int64_t i = 0; i < r; ++i) dk[t * cs + i] += dv[t * r + i];
  const Vec rd = to_double(rr), qd = to_double(q);
  const Vec g = numeric_grad(to_double(rows), [&](const Vec& x) { return dot(rd, ref_attention(qd, x, x, d)); });
  EXPECT_LT(grad_rel_err(dk, g), kTol);
}

// ---------------------------------------------------------------- swiglu, embedding

TEST(OpsGrad, SwiGlu) {
  const int64_t n = 40;
  auto g = rand_floats(n, 51, 4.0), u = rand_floats(n, 52, 2.0), r = rand_floats(n, 53);
  std::vector<float> dg(n), du(n);
  train::swiglu_backward(g.data(), u.data(), r.data(), dg.data(), du.data(), n);
  auto f = [&](const Vec& gg, const Vec& uu) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += r[i] * gg[i] / (1 + std::exp(-gg[i])) * uu[i];
    return s;
  };
  const Vec gd = to_double(g), ud = to_double(u);
  EXPECT_LT(grad_rel_err(dg, numeric_grad(gd, [&](const Vec& x) { return f(x, ud); })), kTol);
  EXPECT_LT(grad_rel_err(du, numeric_grad(ud, [&](const Vec& x) { return f(gd, x); })), kTol);
}

TEST(OpsGrad, EmbeddingScatterAdd) {
  const int64_t rows = 6, dim = 5, n = 9;
  const std::vector<int32_t> ids = {3, 1, 3, 0, 5, 3, 1, 2, 0};
  auto dh = rand_floats(n * dim, 61);
  std::vector<float> dt(static_cast<size_t>(rows * dim), 1.0f);
  train::embedding_backward(ids.data(), dh.data(), dt.data(), n, dim);
  // L = sum_t r_t . table[ids[t]]: dL/dtable[v] = 1 (initial) + sum over t with ids[t] == v.
  for (int64_t v = 0; v < rows; ++v)
    for (int64_t c = 0; c < dim; ++c) {
      double s = 1.0;
      for (int64_t t = 0; t < n; ++t)
        if (ids[t] == v) s += dh[t * dim + c];
      EXPECT_NEAR(dt[v * dim + c], s, 1e-6);
    }
}

// ---------------------------------------------------------------- losses

double ref_lse(const double* x, int64_t V) {
  double mx = -1e300, z = 0;
  for (int64_t i = 0; i < V; ++i) mx = std::max(mx, x[i]);
  for (int64_t i = 0; i < V; ++i) z += std::exp(x[i] - mx);
  return mx + std::log(z);
}

TEST(OpsGrad, CrossEntropyWithIgnoredRow) {
  const int64_t n = 4, V = 7;
  const std::vector<int32_t> tg = {2, -1, 6, 0};
  auto lg = rand_floats(n * V, 71, 3.0);
  auto ref = [&](const Vec& x) {
    double s = 0;
    for (int64_t t = 0; t < n; ++t)
      if (tg[t] >= 0) s += ref_lse(x.data() + t * V, V) - x[t * V + tg[t]];
    return s;
  };
  std::vector<float> dl(static_cast<size_t>(n * V), 9.0f);
  const double loss = train::cross_entropy(lg.data(), tg.data(), n, V, dl.data(), 0.5);
  EXPECT_NEAR(loss, ref(to_double(lg)), 1e-9);
  Vec g = numeric_grad(to_double(lg), ref);
  for (auto& x : g) x *= 0.5;
  EXPECT_LT(grad_rel_err(dl, g), kTol);
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(dl[V + v], 0.0f);  // ignored row
}

TEST(OpsGrad, KlTeacherStudent) {
  const int64_t n = 3, V = 6;
  const std::vector<int32_t> mask = {0, -1, 4};
  auto te = rand_floats(n * V, 81, 2.0), st = rand_floats(n * V, 82, 2.0);
  auto ref = [&](const Vec& s) {
    double kl = 0;
    for (int64_t t = 0; t < n; ++t) {
      if (mask[t] < 0) continue;
      const double lt = ref_lse(to_double(te).data() + t * V, V), ls = ref_lse(s.data() + t * V, V);
      for (int64_t v = 0; v < V; ++v) {
        const double pt = std::exp(te[t * V + v] - lt);
        kl += pt * ((te[t * V + v] - lt) - (s[t * V + v] - ls));
      }
    }
    return kl;
  };
  std::vector<float> dl(static_cast<size_t>(n * V), 0.25f);
  const double kl = train::kl_divergence(te.data(), st.data(), mask.data(), n, V, dl.data(), 2.0);
  EXPECT_NEAR(kl, ref(to_double(st)), 1e-9);
  EXPECT_GT(kl, 0.0);
  for (auto& x : dl) x -= 0.25f;  // added onto what was there
  Vec g = numeric_grad(to_double(st), ref);
  for (auto& x : g) x *= 2.0;
  EXPECT_LT(grad_rel_err(dl, g), kTol);
  // KL of a distribution to itself is zero.
  EXPECT_NEAR(train::kl_divergence(te.data(), te.data(), nullptr, n, V, nullptr, 1.0), 0.0, 1e-12);
}

TEST(OpsGrad, SquaredError) {
  const int64_t n = 50;
  auto y = rand_floats(n, 91), t = rand_floats(n, 92);
  std::vector<float> dy(n);
  const double se = train::squared_error(y.data(), t.data(), n, dy.data(), 0.1);
  auto ref = [&](const Vec& x) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += (x[i] - t[i]) * (x[i] - t[i]);
    return s;
  };
  EXPECT_NEAR(se, ref(to_double(y)), 1e-9);
  Vec g = numeric_grad(to_double(y), ref);
  for (auto& x : g) x *= 0.1;
  EXPECT_LT(grad_rel_err(dy, g), kTol);
}

}  // namespace
}  // namespace mlar::test
