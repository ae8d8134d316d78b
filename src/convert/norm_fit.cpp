#include "convert/norm_fit.h"

#include <cmath>

#include "util/error.h"

namespace mlar {
namespace {

// y = W x + b for one sample, in double. W: [out, in].
void affine(const TypedTensor& W, const TypedTensor& b, const float* x, std::vector<double>& y) {
  const int64_t out = W.dim(0), in = W.dim(1);
  y.assign(static_cast<size_t>(out), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    const float* row = W.row(o);
    double s = b.empty() ? 0.0 : b.ptr()[o];
    for (int64_t i = 0; i < in; ++i) s += static_cast<double>(row[i]) * x[i];
    y[static_cast<size_t>(o)] = s;
  }
}

double rms(const std::vector<double>& v, double eps) {
  double ss = 0;
  for (double x : v) ss += x * x;
  return std::sqrt(ss / static_cast<double>(v.size()) + eps);
}

}  // namespace

LatentScale scale_latent_for_norm(MlaLayerWeights& w, const Reservoir& xs, double eps, bool linear) {
  if (xs.size() == 0) fail("latent norm: no calibration samples");
  const int64_t r = w.w_dkv.dim(0), D = w.w_dkv.dim(1), n = xs.size();
  std::vector<std::vector<double>> cs(static_cast<size_t>(n));  // [n][r] latents
  std::vector<double> m2(static_cast<size_t>(r), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    affine(w.w_dkv, w.b_dkv, xs.row(t), cs[static_cast<size_t>(t)]);
    for (int64_t i = 0; i < r; ++i) m2[static_cast<size_t>(i)] += std::pow(cs[static_cast<size_t>(t)][static_cast<size_t>(i)], 2);
  }
  double mean = 0;
  for (double& v : m2) mean += (v /= static_cast<double>(n)) / static_cast<double>(r);
  // g_i: how much coordinate i reaches keys and values (column energy of W_uk, W_uv).
  std::vector<double> g(static_cast<size_t>(r), 0.0);
  for (const TypedTensor* up : {&w.w_uk, &w.w_uv})
    if (!up->empty())
      for (int64_t o = 0; o < up->dim(0); ++o)
        for (int64_t i = 0; i < r; ++i) g[static_cast<size_t>(i)] += std::pow(up->row(o)[i], 2);
  auto scales = [&](double alpha) {
    std::vector<double> d(static_cast<size_t>(r), 1.0);
    for (int64_t i = 0; i < r; ++i) {
      const double v = m2[static_cast<size_t>(i)];
      if (v > 1e-12 * mean) d[static_cast<size_t>(i)] = std::pow(v / mean, -alpha / 2);
    }
    return d;
  };
  // The error sum_i g_i (c_i - RMSNorm(d c)_i w_i / d_i)^2 of the fitted norm, for scales d.
  auto error = [&](const std::vector<double>& d) {
    std::vector<double> num(static_cast<size_t>(r), 0.0), den(static_cast<size_t>(r), 0.0), rho(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
      const auto& c = cs[static_cast<size_t>(t)];
      double ss = 0;
      for (int64_t i = 0; i < r; ++i) ss += std::pow(d[static_cast<size_t>(i)] * c[static_cast<size_t>(i)], 2);
      const double p = std::sqrt(ss / static_cast<double>(r) + eps);
      rho[static_cast<size_t>(t)] = p;
      for (int64_t i = 0; i < r; ++i) {
        const double c2 = std::pow(d[static_cast<size_t>(i)] * c[static_cast<size_t>(i)], 2);
        num[static_cast<size_t>(i)] += c2 / p;
        den[static_cast<size_t>(i)] += c2 / (p * p);
      }
    }
    double e = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < r; ++i) {
        const size_t k = static_cast<size_t>(i);
        const double wi = den[k] > 0 ? num[k] / den[k] : 1.0;
        const double c = cs[static_cast<size_t>(t)][k];
        e += g[k] * std::pow(c - c * wi / rho[static_cast<size_t>(t)], 2);
      }
    return e;
  };
  // The overall size sigma: the latent's rms brought to kappa sqrt(eps) (kappa 0: left as
  // it is). Below sqrt(eps) the norm's divisor sqrt(mean(c^2) + eps) is nearly the
  // constant sqrt(eps), so the norm is nearly linear.
  auto sigma_for = [&](const std::vector<double>& d, double kappa) {
    if (kappa == 0) return 1.0;
    double ms = 0;
    for (int64_t i = 0; i < r; ++i) ms += d[static_cast<size_t>(i)] * d[static_cast<size_t>(i)] * m2[static_cast<size_t>(i)];
    ms /= static_cast<double>(r);
    return ms > 0 ? kappa * std::sqrt(eps / ms) : 1.0;
  };
  auto times = [](std::vector<double> d, double s) {
    for (double& v : d) v *= s;
    return d;
  };
  LatentScale best_s;
  double best = -1;
  for (double kappa : kLatentKappas) {
    if (!linear && kappa != 0) continue;
    for (double alpha : {0.0, 0.25, 0.5, 0.75, 1.0}) {
      const auto d = scales(alpha);
      const double sigma = sigma_for(d, kappa);
      const double e = error(times(d, sigma));
      if (best < 0 || e < best) best = e, best_s = {alpha, kappa, sigma};
    }
  }
  const auto d = scales(best_s.alpha);
  for (int64_t i = 0; i < r; ++i) {
    const double s = d[static_cast<size_t>(i)], sd = s * best_s.sigma;
    if (sd == 1.0) continue;
    float* row = w.w_dkv.row(i);
    for (int64_t j = 0; j < D; ++j) row[j] = static_cast<float>(row[j] * sd);
    if (!w.b_dkv.empty()) w.b_dkv.ptr()[i] = static_cast<float>(w.b_dkv.ptr()[i] * sd);
    if (s == 1.0) continue;
    for (TypedTensor* up : {&w.w_uk, &w.w_uv})
      if (!up->empty())
        for (int64_t o = 0; o < up->dim(0); ++o) up->row(o)[i] = static_cast<float>(up->row(o)[i] / s);
  }
  return best_s;
}

Tensor fit_latent_norm(const MlaLayerWeights& w, const Reservoir& xs, double eps, double sigma) {
  if (xs.size() == 0) fail("latent norm: no calibration samples");
  const int64_t r = w.w_dkv.dim(0);
  std::vector<double> num(static_cast<size_t>(r), 0.0), den(static_cast<size_t>(r), 0.0), c;
  for (int64_t t = 0; t < xs.size(); ++t) {
    affine(w.w_dkv, w.b_dkv, xs.row(t), c);
    const double rho = rms(c, eps);
    for (int64_t i = 0; i < r; ++i) {
      const double c2 = c[static_cast<size_t>(i)] * c[static_cast<size_t>(i)];
      num[static_cast<size_t>(i)] += c2 / rho;
      den[static_cast<size_t>(i)] += c2 / (rho * rho);
    }
  }
  Tensor out({r});
  for (int64_t i = 0; i < r; ++i) {
    const double d = den[static_cast<size_t>(i)];
    out.data[static_cast<size_t>(i)] = static_cast<float>(d > 0 ? num[static_cast<size_t>(i)] / d / sigma : 1.0 / sigma);
  }
  return out;
}

void factor_query(MlaLayerWeights& w, int64_t q_rank, const la::Mat& S, const Reservoir& xs, double eps,
                  bool intercept) {
  const int64_t D = w.wq.dim(1), out = w.wq.dim(0);
  if (q_rank <= 0 || q_rank > std::min(D, out))
    fail("--q-lora-rank {} must be in [1, {}] (min of the hidden size {} and the query width {})", q_rank,
         std::min(D, out), D, out);
  if (xs.size() <= q_rank)
    fail("--q-lora-rank {}: only {} calibration samples to fit q_b (raise --calib-tokens)", q_rank, xs.size());
  // q_a: leading right singular directions of W_q Sx^(1/2), mapped back by Sx^(-1/2).
  const la::Mat Sx = la::cols_of(la::rows_of(S, 0, D), 0, D);  // [D, D] E[x x^T]
  const double floor = std::max(la::trace(Sx) / static_cast<double>(D), 1e-300) * 1e-8;
  la::Mat root, inv_root;
  la::sym_sqrt(Sx, floor, &root, &inv_root);
  const la::Svd s = la::svd(la::matmul(la::from_tensor(w.wq), root));  // [out, D]
  la::Mat qa = la::matmul(la::rows_of(s.vt, 0, q_rank), inv_root);     // [q_rank, D]
  for (int64_t k = 0; k < q_rank; ++k) {  // unit rows (RMSNorm ignores the scale anyway)
    double n = 0;
    for (int64_t i = 0; i < D; ++i) n += qa(k, i) * qa(k, i);
    n = std::sqrt(n);
    for (int64_t i = 0; i < D; ++i) qa(k, i) /= n > 0 ? n : 1.0;
  }
  w.wq_a = la::to_tensor(qa);
  w.q_a_norm = Tensor({q_rank}, std::vector<float>(static_cast<size_t>(q_rank), 1.0f));

  // Least squares: q ~ [q_b | b] [u; 1], u = RMSNorm(q_a x) (without the 1 and b
  // when no intercept).
  const int64_t n = q_rank + (intercept ? 1 : 0);
  la::Mat UU(n, n), UQ(n, out);
  std::vector<double> u, q;
  const TypedTensor no_bias;
  for (int64_t t = 0; t < xs.size(); ++t) {
    affine(w.wq_a, no_bias, xs.row(t), u);
    const double rho = rms(u, eps);
    for (double& v : u) v /= rho;
    if (intercept) u.push_back(1.0);
    affine(w.wq, w.bq, xs.row(t), q);
    for (int64_t a = 0; a < n; ++a) {
      for (int64_t b = 0; b < n; ++b) UU(a, b) += u[static_cast<size_t>(a)] * u[static_cast<size_t>(b)];
      for (int64_t o = 0; o < out; ++o) UQ(a, o) += u[static_cast<size_t>(a)] * q[static_cast<size_t>(o)];
    }
  }
  const double ridge = std::max(la::trace(UU) / static_cast<double>(n), 1e-300) * 1e-9;
  for (int64_t a = 0; a < n; ++a) UU(a, a) += ridge;
  la::Mat inv;
  la::sym_sqrt(UU, ridge, nullptr, &inv);
  const la::Mat coef = la::matmul(la::matmul(inv, inv), UQ);  // [n, out] = (U^T U)^-1 U^T Q
  la::Mat qb(out, q_rank);
  Tensor bq({out});
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < q_rank; ++k) qb(o, k) = coef(k, o);
    if (intercept) bq.data[static_cast<size_t>(o)] = static_cast<float>(coef(q_rank, o));
  }
  w.wq_b = la::to_tensor(qb);
  w.bq = intercept ? TypedTensor(std::move(bq)) : TypedTensor{};
  w.wq = Tensor{};
}

}  // namespace mlar
