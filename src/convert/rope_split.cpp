#include "convert/rope_split.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <numeric>

#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {
namespace {

constexpr RopeStrategy kStrategies[] = {RopeStrategy::RoRoPE, RopeStrategy::High, RopeStrategy::Low,
                                        RopeStrategy::Uniform, RopeStrategy::TwoNorm};

// E|k_{j,i}|^2-style energy of pair i in the d x d block starting at (o, o) of M.
double pair_energy(const la::Mat& M, int64_t o, RopeLayout layout, int64_t d, int64_t i) {
  const auto [a, b] = rope_pair_coords(layout, d, i);
  return M(o + a, o + a) + M(o + b, o + b);
}

// Per-frequency 2norm score of one layer: sum_h sqrt(E|q_{h,i}|^2) sqrt(E|k_{j(h),i}|^2).
std::vector<double> two_norm_scores(const ModelConfig& c, const RopeStats& st) {
  const int64_t d = c.head_dim, half = d / 2, g = c.group_size();
  if (static_cast<int64_t>(st.query.size()) != c.num_heads) fail("plan_rope: 2norm needs the query statistics");
  std::vector<double> score(static_cast<size_t>(half), 0.0);
  for (int64_t h = 0; h < c.num_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      score[static_cast<size_t>(i)] += std::sqrt(std::max(0.0, pair_energy(st.query[static_cast<size_t>(h)], 0,
                                                                            c.rope_layout, d, i))) *
                                       std::sqrt(std::max(0.0, pair_energy(st.key, (h / g) * d, c.rope_layout, d, i)));
  return score;
}

using cplx = std::complex<double>;

// The group's Hermitian covariance C[(j,f),(j',f')] = E[z z'^*], z = re + i im:
// real part E[re re'] + E[im im'] (what the real PCA reads), imaginary part
// E[im re'] - E[re im'].
std::vector<cplx> group_cov(const ModelConfig& c, const la::Mat& K, const std::vector<int64_t>& freqs) {
  const int64_t d = c.head_dim, J = c.num_kv_heads, F = static_cast<int64_t>(freqs.size()), n = J * F;
  std::vector<cplx> C(static_cast<size_t>(n * n));
  for (int64_t j = 0; j < J; ++j)
    for (int64_t f = 0; f < F; ++f)
      for (int64_t j2 = 0; j2 < J; ++j2)
        for (int64_t f2 = 0; f2 < F; ++f2) {
          const auto [a, b] = rope_pair_coords(c.rope_layout, d, freqs[static_cast<size_t>(f)]);
          const auto [a2, b2] = rope_pair_coords(c.rope_layout, d, freqs[static_cast<size_t>(f2)]);
          const int64_t r = j * d, r2 = j2 * d;
          C[static_cast<size_t>((j * F + f) * n + j2 * F + f2)] =
              cplx(K(r + a, r2 + a2) + K(r + b, r2 + b2), K(r + b, r2 + a2) - K(r + a, r2 + b2));
        }
  return C;
}

// Descending eigen-pairs of C: real (of its real part, as TransMLA's PCA with re and
// im as separate samples) or complex (of the Hermitian C).
la::HermEig group_eig(const std::vector<cplx>& C, int64_t n, bool complex) {
  if (complex) return la::herm_eig(C, n);
  la::Mat R(n, n);
  for (int64_t i = 0; i < n * n; ++i) R.a[static_cast<size_t>(i)] = C[static_cast<size_t>(i)].real();
  const la::SymEig e = la::sym_eig(R);
  la::HermEig out;
  out.values = e.values;
  for (double v : e.vectors.a) out.vectors.push_back(v);
  return out;
}

// PCA of the group's (kv head, frequency) vectors, keeping the first m components
// (mix = part = the eigenvectors V).
RopeGroup pca_group(const ModelConfig& c, const la::Mat& K, std::vector<int64_t> freqs, int64_t m, bool complex) {
  const std::vector<cplx> C = group_cov(c, K, freqs);
  const int64_t n = c.num_kv_heads * static_cast<int64_t>(freqs.size());
  const la::HermEig e = group_eig(C, n, complex);
  RopeGroup g;
  g.freqs = std::move(freqs);
  g.mix = g.mix_im = g.part = g.part_im = la::Mat(n, m);
  std::vector<cplx> M(static_cast<size_t>(n * m)), P(static_cast<size_t>(n * m));  // [n, m]
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < m; ++a) {
      const cplx v = e.vectors[static_cast<size_t>(i * n + a)];
      const cplx mv = v, pv = v;
      M[static_cast<size_t>(i * m + a)] = mv;
      P[static_cast<size_t>(i * m + a)] = pv;
      g.mix(i, a) = mv.real();
      g.mix_im(i, a) = mv.imag();
      g.part(i, a) = pv.real();
      g.part_im(i, a) = pv.imag();
    }
  g.eigenvalues = e.values;
  // E|rope part|^2 = tr(P (M^H C M) P^H)
  std::vector<cplx> kk(static_cast<size_t>(m * m));  // M^H C M
  for (int64_t a = 0; a < m; ++a)
    for (int64_t b = 0; b < m; ++b) {
      cplx acc = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          acc += std::conj(M[static_cast<size_t>(i * m + a)]) * C[static_cast<size_t>(i * n + j)] *
                 M[static_cast<size_t>(j * m + b)];
      kk[static_cast<size_t>(a * m + b)] = acc;
    }
  double energy = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < m; ++a)
      for (int64_t b = 0; b < m; ++b)
        energy += (P[static_cast<size_t>(i * m + a)] * kk[static_cast<size_t>(a * m + b)] *
                   std::conj(P[static_cast<size_t>(i * m + b)]))
                      .real();
  g.rope_energy = energy;
  return g;
}

}  // namespace

const char* rope_strategy_name(RopeStrategy s) {
  switch (s) {
    case RopeStrategy::RoRoPE: return "rorope";
    case RopeStrategy::High: return "high";
    case RopeStrategy::Low: return "low";
    case RopeStrategy::Uniform: return "uniform";
    case RopeStrategy::TwoNorm: return "2norm";
  }
  return "?";
}

std::optional<RopeStrategy> rope_strategy_from_name(const std::string& name) {
  for (RopeStrategy s : kStrategies)
    if (name == rope_strategy_name(s)) return s;
  return std::nullopt;
}

std::string rope_strategy_names() {
  std::string out;
  for (RopeStrategy s : kStrategies) out += (out.empty() ? "" : ", ") + std::string(rope_strategy_name(s));
  return out;
}

std::pair<int64_t, int64_t> rope_pair_coords(RopeLayout layout, int64_t dim, int64_t i) {
  return layout == RopeLayout::Half ? std::pair<int64_t, int64_t>{i, i + dim / 2}
                                    : std::pair<int64_t, int64_t>{2 * i, 2 * i + 1};
}

void check_rope_choice(const ModelConfig& c, RopeStrategy s, int64_t d_r, int64_t freqfold) {
  const int64_t d = c.head_dim;
  if (d_r <= 0 || d_r % 2 != 0)
    fail("--qk-rope-dim {}: the rope key holds (re, im) pairs, so it must be positive and even", d_r);
  if (d_r > d) fail("--qk-rope-dim {} exceeds the source head size {} (a head has only {} rope pairs)", d_r, d, d / 2);
  if (freqfold < 1) fail("--freqfold {} must be positive", freqfold);
  if (s != RopeStrategy::RoRoPE) {
    if (freqfold != 1)
      fail("--freqfold {} applies to --rope-strategy rorope only (got {})", freqfold, rope_strategy_name(s));
    return;
  }
  if (d % d_r != 0)
    fail("--qk-rope-dim {} does not divide the head size {}: rorope keeps every (d/d_r)-th frequency group, "
         "so d_r must be {} / c for an integer c (or use a partial strategy: high, low, uniform, 2norm)",
         d_r, d, d);
  const int64_t cstep = d / d_r;
  if (freqfold % cstep != 0 || (d / 2) % freqfold != 0)
    fail("--freqfold {} with --qk-rope-dim {} (head size {}): rorope needs a multiple of {} that divides {}", freqfold,
         d_r, d, cstep, d / 2);
}

std::vector<int64_t> freqfold_candidates(const ModelConfig& c, RopeStrategy s, int64_t d_r) {
  if (s != RopeStrategy::RoRoPE) return {1};
  const int64_t d = c.head_dim;
  std::vector<int64_t> out;
  if (d_r <= 0 || d % d_r != 0) return out;
  for (int64_t f = d / d_r; f <= d / 2; f *= 2)
    if ((d / 2) % f == 0) out.push_back(f);
  return out;
}

std::vector<int64_t> choose_partial_freqs(const ModelConfig& c, RopeStrategy s, int64_t d_r,
                                          const std::vector<const RopeStats*>& layers) {
  const int64_t half = c.head_dim / 2, npairs = d_r / 2;
  std::vector<int64_t> keep;
  switch (s) {
    case RopeStrategy::High:
      for (int64_t t = 0; t < npairs; ++t) keep.push_back(t);
      break;
    case RopeStrategy::Low:
      for (int64_t t = 0; t < npairs; ++t) keep.push_back(half - npairs + t);
      break;
    case RopeStrategy::Uniform:
      for (int64_t t = 0; t < npairs; ++t) keep.push_back(t * half / npairs);
      break;
    case RopeStrategy::TwoNorm: {
      if (layers.empty()) fail("choose_partial_freqs: 2norm needs statistics");
      std::vector<double> score(static_cast<size_t>(half), 0.0);
      for (const RopeStats* st : layers) {
        const std::vector<double> l = two_norm_scores(c, *st);
        double sum = 0;
        for (double v : l) sum += v;
        for (int64_t i = 0; i < half; ++i)
          score[static_cast<size_t>(i)] += sum > 0 ? l[static_cast<size_t>(i)] / sum : 0.0;
      }
      std::vector<int64_t> order(static_cast<size_t>(half));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)];
      });
      keep.assign(order.begin(), order.begin() + npairs);
      std::sort(keep.begin(), keep.end());
      break;
    }
    case RopeStrategy::RoRoPE: break;
  }
  return keep;
}

RopePlan plan_rope(const ModelConfig& c, const RopeStats& st, RopeStrategy s, int64_t d_r, int64_t freqfold,
                   const std::vector<int64_t>& kept_freqs, bool complex) {
  check_rope_choice(c, s, d_r, freqfold);
  const int64_t d = c.head_dim, J = c.num_kv_heads, npairs = d_r / 2;
  if (st.key.rows != J * d || st.key.cols != J * d)
    fail("plan_rope: key statistics are {} x {}, expected {} x {}", st.key.rows, st.key.cols, J * d, J * d);
  RopePlan plan;
  plan.d_r = d_r;
  plan.freqfold = freqfold;
  if (s == RopeStrategy::RoRoPE) {
    const int64_t cstep = d / d_r, F = freqfold, m = F / cstep;
    for (int64_t g0 = 0; g0 < d / 2; g0 += F) {
      std::vector<int64_t> freqs(static_cast<size_t>(F));
      std::iota(freqs.begin(), freqs.end(), g0);
      RopeGroup g = pca_group(c, st.key, std::move(freqs), m, complex);
      for (int64_t a = 0; a < m; ++a) g.rope_freq.push_back(g0 + cstep * a);
      plan.groups.push_back(std::move(g));
    }
  } else {
    const std::vector<int64_t> keep = kept_freqs.empty() ? choose_partial_freqs(c, s, d_r, {&st}) : kept_freqs;
    if (!std::is_sorted(keep.begin(), keep.end())) fail("plan_rope: kept frequencies must ascend");
    if (static_cast<int64_t>(keep.size()) != npairs)
      fail("plan_rope: {} frequencies given for --qk-rope-dim {}", keep.size(), d_r);
    for (int64_t i : keep) {
      RopeGroup g = pca_group(c, st.key, {i}, 1, complex);
      g.rope_freq = {i};
      plan.groups.push_back(std::move(g));
    }
  }
  // Slots in increasing source frequency index.
  for (size_t gi = 0; gi < plan.groups.size(); ++gi)
    for (size_t a = 0; a < plan.groups[gi].rope_freq.size(); ++a)
      plan.slots.push_back({static_cast<int64_t>(gi), static_cast<int64_t>(a)});
  std::stable_sort(plan.slots.begin(), plan.slots.end(), [&](const auto& x, const auto& y) {
    return plan.groups[static_cast<size_t>(x.first)].rope_freq[static_cast<size_t>(x.second)] <
           plan.groups[static_cast<size_t>(y.first)].rope_freq[static_cast<size_t>(y.second)];
  });
  for (const auto& [gi, a] : plan.slots)
    plan.slot_freq.push_back(plan.groups[static_cast<size_t>(gi)].rope_freq[static_cast<size_t>(a)]);
  if (static_cast<int64_t>(plan.slots.size()) != npairs)
    fail("plan_rope: {} rope pairs planned for --qk-rope-dim {}", plan.slots.size(), d_r);
  // Captured key energy: E|rope parts|^2 over the total E|k|^2.
  double kept = 0;
  for (const auto& g : plan.groups) kept += g.rope_energy;
  const double total = la::trace(st.key);
  plan.captured = total > 0 ? kept / total : 0.0;
  return plan;
}

std::vector<double> plan_inv_freq(const ModelConfig& c, const RopePlan& plan) {
  return rope_inv_freq_table(c, plan.d_r, plan.slot_freq);
}

std::vector<double> rope_inv_freq_table(const ModelConfig& c, int64_t d_r, const std::vector<int64_t>& slot_freq) {
  if (static_cast<int64_t>(slot_freq.size()) * 2 != d_r)
    fail("rope frequency table: {} pairs for a rope key of {}", slot_freq.size(), d_r);
  const std::vector<float> src = rope_inv_freq(c);
  const std::vector<float> derived = rope_inv_freq(c.rope_theta, d_r, c.rope_scaling);
  std::vector<double> out;
  bool same = true;
  for (size_t t = 0; t < slot_freq.size(); ++t) {
    const float f = src[static_cast<size_t>(slot_freq[t])];
    out.push_back(static_cast<double>(f));
    same = same && f == derived[t];
  }
  return same ? std::vector<double>{} : out;
}

}  // namespace mlar
