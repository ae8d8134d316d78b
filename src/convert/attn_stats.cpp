#include "convert/attn_stats.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "ops/matmul.h"
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
  std::vector<float> q(static_cast<size_t>(n * H * d)), k(static_cast<size_t>(n * J * d));  // [n, H d], [n, J d]
  std::vector<float> v(static_cast<size_t>(n * J * d));                                     // [n, J d]
  ops::matmul(x, w.wq.ptr(), w.bq.empty() ? nullptr : w.bq.ptr(), q.data(), n, D, H * d);
  ops::matmul(x, w.wk.ptr(), w.bk.empty() ? nullptr : w.bk.ptr(), k.data(), n, D, J * d);
  ops::matmul(x, w.wv.ptr(), w.bv.empty() ? nullptr : w.bv.ptr(), v.data(), n, D, J * d);
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = i;
  const std::vector<float> inv_freq = rope_inv_freq(c);
  ops::rope(q.data(), n, H, d, pos.data(), inv_freq.data(), rope_pairs(c.rope_layout));
  ops::rope(k.data(), n, J, d, pos.data(), inv_freq.data(), rope_pairs(c.rope_layout));
  std::vector<float> s(static_cast<size_t>(n * n));  // [n, n] scores of one head
  std::vector<double> u(static_cast<size_t>(n * D));  // [n, D] W_o[h] v_n of one head
  std::vector<double> un(static_cast<size_t>(n));     // [n] |W_o[h] v_n|^2
  std::vector<double> ubar(static_cast<size_t>(D));   // [D]
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  for (int64_t h = 0; h < H; ++h) {
    const int64_t j = h / g;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(n),
                static_cast<int>(d), scale, q.data() + h * d, static_cast<int>(H * d), k.data() + j * d,
                static_cast<int>(J * d), 0.0f, s.data(), static_cast<int>(n));
    for (int64_t t = 0; t < n; ++t) {  // u_t = W_o[h] v_{j,t}
      const float* vt = v.data() + t * J * d + j * d;
      double nn = 0;
      for (int64_t o = 0; o < D; ++o) {
        const float* wo = w.wo.row(o) + h * d;
        double acc = 0;
        for (int64_t i = 0; i < d; ++i) acc += static_cast<double>(wo[i]) * vt[i];
        u[static_cast<size_t>(t * D + o)] = acc;
        nn += acc * acc;
      }
      un[static_cast<size_t>(t)] = nn;
    }
    double* mh = mass_.data() + h * window_;
    for (int64_t m = 0; m < n; ++m) {
      const float* row = s.data() + m * n;
      float mx = row[0];
      for (int64_t t = 1; t <= m; ++t) mx = std::max(mx, row[t]);
      double z = 0;
      for (int64_t t = 0; t <= m; ++t) z += std::exp(static_cast<double>(row[t] - mx));
      double second = 0;
      std::fill(ubar.begin(), ubar.end(), 0.0);
      for (int64_t t = 0; t <= m; ++t) {
        const double p = std::exp(static_cast<double>(row[t] - mx)) / z;
        mh[m - t] += p;
        second += p * un[static_cast<size_t>(t)];
        const double* ut = u.data() + t * D;
        for (int64_t o = 0; o < D; ++o) ubar[static_cast<size_t>(o)] += p * ut[o];
      }
      double mean2 = 0;
      for (double x : ubar) mean2 += x * x;
      spread_[static_cast<size_t>(h)] += std::max(second - mean2, 0.0);
    }
  }
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
