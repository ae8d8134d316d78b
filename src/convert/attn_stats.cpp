#include "convert/attn_stats.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "ops/matmul.h"
#include "ops/parallel.h"
#include "ops/rope.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {

DistanceHistogram::DistanceHistogram(const ModelConfig& c, int64_t window)
    : heads_(c.num_heads),
      window_(window),
      mass_(static_cast<size_t>(c.num_heads * window), 0.0),
      spread_(static_cast<size_t>(c.num_heads), 0.0) {}

void DistanceHistogram::add(const ModelConfig& c, const LayerWeights& w, const float* x, int64_t n) {
  if (n > window_) fail("attention statistics: window of {} tokens, histogram of {}", n, window_);
  const int64_t D = c.hidden_size, H = c.num_heads, J = c.num_kv_heads, d = c.head_dim, g = c.group_size();
  // float32 values of the layer's projections (a BF16/F16 source is widened here,
  // for this call only).
  Tensor tq, tk, tv, to, tbq, tbk, tbv;
  const float* wq = f32_or_convert(w.wq, tq);
  const float* wk = f32_or_convert(w.wk, tk);
  const float* wv = f32_or_convert(w.wv, tv);
  const float* bq = w.bq.empty() ? nullptr : f32_or_convert(w.bq, tbq);
  const float* bk = w.bk.empty() ? nullptr : f32_or_convert(w.bk, tbk);
  const float* bv = w.bv.empty() ? nullptr : f32_or_convert(w.bv, tbv);
  std::vector<float> q(static_cast<size_t>(n * H * d)), k(static_cast<size_t>(n * J * d));  // [n, H d], [n, J d]
  std::vector<float> v(static_cast<size_t>(n * J * d));                                     // [n, J d]
  ops::matmul(x, wq, bq, q.data(), n, D, H * d);
  ops::matmul(x, wk, bk, k.data(), n, D, J * d);
  ops::matmul(x, wv, bv, v.data(), n, D, J * d);
  tq = Tensor{};
  tk = Tensor{};
  tv = Tensor{};
  if (gram_of_ != w.wo.data() || gram_.empty()) {
    const float* wo = f32_or_convert(w.wo, to);  // [D, H d]
    gram_.assign(static_cast<size_t>(H * d * d), 0.0);
    ops::parallel_for(H, 1, [&](int64_t h0, int64_t h1) {
      std::vector<double> wob(static_cast<size_t>(D * d));  // [D, d] W_o[h]
      for (int64_t h = h0; h < h1; ++h) {
        for (int64_t o = 0; o < D; ++o)
          for (int64_t i = 0; i < d; ++i) wob[static_cast<size_t>(o * d + i)] = wo[o * H * d + h * d + i];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(d), static_cast<int>(D), 1.0, wob.data(),
                    static_cast<int>(d), 0.0, gram_.data() + h * d * d, static_cast<int>(d));
      }
    });
    to = Tensor{};
    gram_of_ = w.wo.data();
  }
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = i;
  const std::vector<float> inv_freq = rope_inv_freq(c);
  ops::rope(q.data(), n, H, d, pos.data(), inv_freq.data(), rope_pairs(c.rope_layout));
  ops::rope(k.data(), n, J, d, pos.data(), inv_freq.data(), rope_pairs(c.rope_layout));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const int ni = static_cast<int>(n), di = static_cast<int>(d);
  // Per head (heads in parallel; each writes its own row of mass_ and spread_):
  //   P [n, n]   causal softmax of the head's scores (row m: query m)
  //   u_t = W_o[h] v_t, so u_t . u_s = v_t^T G v_s with G = W_o[h]^T W_o[h] [d, d]
  //   spread += sum_m (sum_t P[m,t] |u_t|^2 - |ubar_m|^2),
  //   |ubar_m|^2 = pv_m^T G pv_m with pv = P V_j [n, d].
  ops::parallel_for(H, 1, [&](int64_t h0, int64_t h1) {
    std::vector<float> s(static_cast<size_t>(n * n));    // [n, n] scores
    std::vector<double> P(static_cast<size_t>(n * n));   // [n, n] probabilities (lower triangle)
    std::vector<double> vj(static_cast<size_t>(n * d));   // [n, d] v_j
    std::vector<double> pv(static_cast<size_t>(n * d));   // [n, d] P v_j
    std::vector<double> tg(static_cast<size_t>(n * d));   // [n, d] (v_j or P v_j) G
    std::vector<double> un(static_cast<size_t>(n));       // [n] |u_t|^2
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t j = h / g;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, ni, di, scale, q.data() + h * d,
                  static_cast<int>(H * d), k.data() + j * d, static_cast<int>(J * d), 0.0f, s.data(), ni);
      double* mh = mass_.data() + h * window_;
      std::fill(P.begin(), P.end(), 0.0);
      for (int64_t m = 0; m < n; ++m) {
        const float* row = s.data() + m * n;
        float mx = row[0];
        for (int64_t t = 1; t <= m; ++t) mx = std::max(mx, row[t]);
        double* pm = P.data() + m * n;
        double z = 0;
        for (int64_t t = 0; t <= m; ++t) z += pm[t] = std::exp(static_cast<double>(row[t] - mx));
        for (int64_t t = 0; t <= m; ++t) {
          pm[t] /= z;
          mh[m - t] += pm[t];
        }
      }
      const double* G = gram_.data() + h * d * d;  // [d, d] W_o[h]^T W_o[h], upper triangle
      for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < d; ++i) vj[static_cast<size_t>(t * d + i)] = v[static_cast<size_t>(t * J * d + j * d + i)];
      pv = vj;
      cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, ni, di, 1.0, P.data(), ni,
                  pv.data(), di);
      // rowwise x_t^T G x_t of an [n, d] matrix
      auto quad = [&](const std::vector<double>& xs, int64_t t) {
        const double* a = xs.data() + t * d;
        const double* b = tg.data() + t * d;
        double acc = 0;
        for (int64_t i = 0; i < d; ++i) acc += a[i] * b[i];
        return acc;
      };
      cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, ni, di, 1.0, G, di, vj.data(), di, 0.0, tg.data(), di);
      for (int64_t t = 0; t < n; ++t) un[static_cast<size_t>(t)] = quad(vj, t);
      cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, ni, di, 1.0, G, di, pv.data(), di, 0.0, tg.data(), di);
      double spread = 0;
      for (int64_t m = 0; m < n; ++m) {
        const double* pm = P.data() + m * n;
        double second = 0;
        for (int64_t t = 0; t <= m; ++t) second += pm[t] * un[static_cast<size_t>(t)];
        spread += std::max(second - quad(pv, m), 0.0);
      }
      spread_[static_cast<size_t>(h)] += spread;
    }
  });
  queries_ += n;
}

std::pair<double, double> DistanceHistogram::mean_rotation(int64_t h, double inv_freq) const {
  if (queries_ == 0) return {1.0, 0.0};
  const double* mh = mass_.data() + h * window_;
  double a = 0, b = 0;
  for (int64_t t = 0; t < window_; ++t) {
    a += mh[t] * std::cos(inv_freq * static_cast<double>(t));
    b += mh[t] * std::sin(inv_freq * static_cast<double>(t));
  }
  return {a / static_cast<double>(queries_), b / static_cast<double>(queries_)};
}

}  // namespace mlar
