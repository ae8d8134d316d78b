#include "convert/rope_split.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <cstdlib>
#include <string>

#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {
namespace {

constexpr RopeStrategy kStrategies[] = {RopeStrategy::RoRoPE,  RopeStrategy::High,    RopeStrategy::Low,
                                        RopeStrategy::Uniform, RopeStrategy::TwoNorm, RopeStrategy::Attn};

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

// The group's covariance C[(j,f),(j',f')] = E[re re'] + E[im im'].
la::Mat group_cov(const ModelConfig& c, const la::Mat& K, const std::vector<int64_t>& freqs) {
  const int64_t d = c.head_dim, J = c.num_kv_heads, F = static_cast<int64_t>(freqs.size()), n = J * F;
  la::Mat C(n, n);
  for (int64_t j = 0; j < J; ++j)
    for (int64_t f = 0; f < F; ++f)
      for (int64_t j2 = 0; j2 < J; ++j2)
        for (int64_t f2 = 0; f2 < F; ++f2) {
          const auto [a, b] = rope_pair_coords(c.rope_layout, d, freqs[static_cast<size_t>(f)]);
          const auto [a2, b2] = rope_pair_coords(c.rope_layout, d, freqs[static_cast<size_t>(f2)]);
          C(j * F + f, j2 * F + f2) = K(j * d + a, j2 * d + a2) + K(j * d + b, j2 * d + b2);
        }
  return C;
}

// PCA of the group's (kv head, frequency) vectors, keeping the first m components;
// with weights (one per row of C) the PCA of W^1/2 C W^1/2.
RopeGroup pca_group(const ModelConfig& c, const la::Mat& K, std::vector<int64_t> freqs, int64_t m,
                    const std::vector<double>& weights = {}) {
  const la::Mat C = group_cov(c, K, freqs);
  const int64_t n = C.rows;
  std::vector<double> sw(static_cast<size_t>(n), 1.0);  // sqrt of the weights, floored
  if (!weights.empty()) {
    const double top = *std::max_element(weights.begin(), weights.end());
    for (int64_t i = 0; i < n; ++i)
      sw[static_cast<size_t>(i)] = std::sqrt(std::max(weights[static_cast<size_t>(i)], std::max(top, 1e-300) * 1e-9));
  }
  la::Mat Cw = C;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) Cw(i, j) *= sw[static_cast<size_t>(i)] * sw[static_cast<size_t>(j)];
  const la::SymEig e = la::sym_eig(Cw);
  if (getenv("MLAR_DEBUG_CPLX") && freqs.size() == 1) {  // TEMP: complex PCA energy
    const int64_t d = c.head_dim, J = c.num_kv_heads;
    const auto [re, im] = rope_pair_coords(c.rope_layout, d, freqs[0]);
    la::Mat R(2 * J, 2 * J);
    for (int64_t j = 0; j < J; ++j)
      for (int64_t k = 0; k < J; ++k) {
        const double A = K(j * d + re, k * d + re) + K(j * d + im, k * d + im);
        const double B = K(j * d + im, k * d + re) - K(j * d + re, k * d + im);
        R(j, k) = A; R(J + j, J + k) = A; R(j, J + k) = -B; R(J + j, k) = B;
      }
    const auto ce = la::sym_eig(R);
    fprintf(stderr, "freq %ld total %.4g real top %.4g complex top %.4g\n", (long)freqs[0], la::trace(C), e.values[0], ce.values[0]);
  }
  RopeGroup g;
  g.freqs = std::move(freqs);
  g.mix = la::cols_of(e.vectors, 0, m);
  g.part = g.mix;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < m; ++a) {
      g.mix(i, a) *= sw[static_cast<size_t>(i)];
      g.part(i, a) /= sw[static_cast<size_t>(i)];
    }
  g.eigenvalues = e.values;
  // E|rope part|^2 = tr(part (mix^T C mix) part^T)
  const la::Mat kk = la::sandwich(la::transpose(g.mix), C);  // [m, m]
  g.rope_energy = la::trace(la::sandwich(g.part, kk));
  return g;
}

// Weighted eigenvalues of every (frequency, component) of one layer, [d/2][n_kv].
std::vector<std::vector<double>> attn_pair_scores(const ModelConfig& c, const RopeStats& st) {
  const int64_t half = c.head_dim / 2, J = c.num_kv_heads;
  if (static_cast<int64_t>(st.pair_weight.size()) != J * half) fail("plan_rope: attn needs the pair weights");
  std::vector<std::vector<double>> out;
  for (int64_t i = 0; i < half; ++i) {
    std::vector<double> w;
    for (int64_t j = 0; j < J; ++j) w.push_back(st.pair_weight[static_cast<size_t>(j * half + i)]);
    la::Mat C = group_cov(c, st.key, {i});
    for (int64_t a = 0; a < J; ++a)
      for (int64_t b = 0; b < J; ++b) C(a, b) *= std::sqrt(std::max(w[a], 0.0) * std::max(w[b], 0.0));
    std::vector<double> ev = la::sym_eig(C).values;
    for (double& v : ev) v = std::max(v, 0.0);
    out.push_back(ev);
  }
  return out;
}

}  // namespace

const char* rope_strategy_name(RopeStrategy s) {
  switch (s) {
    case RopeStrategy::RoRoPE: return "rorope";
    case RopeStrategy::High: return "high";
    case RopeStrategy::Low: return "low";
    case RopeStrategy::Uniform: return "uniform";
    case RopeStrategy::TwoNorm: return "2norm";
    case RopeStrategy::Attn: return "attn";
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
      if (getenv("MLAR_KEEP")) { std::string e = getenv("MLAR_KEEP"); size_t p = 0; while (p < e.size()) { keep.push_back(std::stoll(e.substr(p))); p = e.find(',', p); if (p == std::string::npos) break; ++p; } break; } // TEMP
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
    case RopeStrategy::Attn: {
      if (layers.empty()) fail("choose_partial_freqs: attn needs statistics");
      std::vector<std::vector<double>> score;  // [d/2][n_kv], summed normalised scores
      for (const RopeStats* st : layers) {
        const auto l = attn_pair_scores(c, *st);
        double sum = 0;
        for (const auto& v : l)
          for (double x : v) sum += x;
        if (score.empty()) score.assign(l.size(), std::vector<double>(l.front().size(), 0.0));
        for (size_t i = 0; i < l.size(); ++i)
          for (size_t a = 0; a < l[i].size(); ++a) score[i][a] += sum > 0 ? l[i][a] / sum : 0.0;
      }
      // Take the largest d_r/2; per frequency the scores descend, so this keeps prefixes.
      std::vector<std::pair<int64_t, int64_t>> all;
      for (int64_t i = 0; i < half; ++i)
        for (int64_t a = 0; a < static_cast<int64_t>(score[static_cast<size_t>(i)].size()); ++a) all.push_back({i, a});
      std::stable_sort(all.begin(), all.end(), [&](const auto& x, const auto& y) {
        return score[static_cast<size_t>(x.first)][static_cast<size_t>(x.second)] >
               score[static_cast<size_t>(y.first)][static_cast<size_t>(y.second)];
      });
      if (static_cast<int64_t>(all.size()) < npairs)
        fail("--qk-rope-dim {}: only {} (frequency, kv head) pairs exist", d_r, all.size());
      for (int64_t t = 0; t < npairs; ++t) keep.push_back(all[static_cast<size_t>(t)].first);
      std::sort(keep.begin(), keep.end());
      break;
    }
    case RopeStrategy::RoRoPE: break;
  }
  return keep;
}

RopePlan plan_rope(const ModelConfig& c, const RopeStats& st, RopeStrategy s, int64_t d_r, int64_t freqfold,
                   const std::vector<int64_t>& kept_freqs) {
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
      RopeGroup g = pca_group(c, st.key, std::move(freqs), m);
      for (int64_t a = 0; a < m; ++a) g.rope_freq.push_back(g0 + cstep * a);
      plan.groups.push_back(std::move(g));
    }
  } else {
    const std::vector<int64_t> keep = kept_freqs.empty() ? choose_partial_freqs(c, s, d_r, {&st}) : kept_freqs;
    if (!std::is_sorted(keep.begin(), keep.end())) fail("plan_rope: kept frequencies must ascend");
    if (static_cast<int64_t>(keep.size()) != npairs)
      fail("plan_rope: {} frequencies given for --qk-rope-dim {}", keep.size(), d_r);
    for (size_t t = 0; t < keep.size();) {  // one group per distinct frequency (attn may repeat one)
      const int64_t i = keep[t];
      int64_t m = 0;
      while (t < keep.size() && keep[t] == i) ++m, ++t;
      std::vector<double> w;
      if (s == RopeStrategy::Attn) {
        if (static_cast<int64_t>(st.pair_weight.size()) != J * (d / 2)) fail("plan_rope: attn needs the pair weights");
        for (int64_t j = 0; j < J; ++j) w.push_back(st.pair_weight[static_cast<size_t>(j * (d / 2) + i)]);
      }
      if (m > J) fail("plan_rope: {} rope pairs at frequency {} but only {} kv heads", m, i, J);
      RopeGroup g = pca_group(c, st.key, {i}, m, w);
      g.rope_freq.assign(static_cast<size_t>(m), i);
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
