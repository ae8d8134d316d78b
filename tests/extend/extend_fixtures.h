// Shared pieces of the extend tests: small random GQA models, random calibration
// ids, logit comparisons through the runtime, and an independent double-precision
// reference forward of "the source GQA model with the non-kept RoPE removed".
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <functional>
#include <string>
#include <random>
#include <stdexcept>
#include <vector>

#include "convert/extend.h"
#include "model/model.h"
#include "runtime/naive_forward.h"
#include "runtime/random_model.h"
#include "runtime/session.h"
#include "util/error.h"

namespace mlar::test {

// The message of the mlar::Error f throws ("" and a failure when none is thrown).
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no mlar::Error was thrown";
  return "";
}

#define EXPECT_CONTAINS(msg, sub)                                                                        \
  do {                                                                                                   \
    const std::string m_ = (msg);                                                                        \
    EXPECT_NE(m_.find(sub), std::string::npos) << "message: " << m_ << "\nexpected to contain: " << (sub); \
  } while (0)

inline ModelConfig extend_config(int64_t n_kv, RopeLayout layout = RopeLayout::Half, bool bias = false) {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = n_kv;
  c.head_dim = 8;
  c.rope_theta = 10000;
  c.rope_layout = layout;
  c.attention_bias = bias;
  c.max_position_embeddings = 64;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

// A fixed conversion of extend_config models: windows of 24, r 6, d_r 4, key balance 0.3, quiet.
inline ExtendOptions fixed_options() {
  ExtendOptions o;
  o.calib_len = 24;
  o.kv_lora_rank = 6;
  o.qk_rope_dim = 4;
  o.attn_key_balance = 0.3;
  o.progress = false;
  return o;
}

inline std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> pick(3, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = pick(rng);
  return ids;
}

// Options for a full-rank conversion (r = 2 n_kv d) with a fixed rope choice.
inline ExtendOptions full_rank_options(const ModelConfig& c, RopeStrategy s, int64_t d_r, int64_t freqfold,
                                       RopePca pca = RopePca::Complex) {
  ExtendOptions o;
  o.calib_len = 32;
  o.rope_strategy = s;
  o.qk_rope_dim = d_r;
  o.freqfold = freqfold;
  o.kv_lora_rank = 2 * c.kv_dim();
  o.kv_method = KvMethod::Pca;
  o.nope_rotation = NopeRotation::None;  // the plain NoPE part the reference computes
  o.rope_pca = pca;
  o.progress = false;
  return o;
}

// All logits [n, V] of `ids` (positions 0..n-1) through the runtime.
inline Tensor runtime_logits(const Model& m, const std::vector<int32_t>& ids) {
  SessionOptions so;
  so.max_tokens = static_cast<int64_t>(ids.size());
  Session s(m, so);
  return s.forward(ids, Logits::All);
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape, b.shape);
  double m = 0;
  for (size_t i = 0; i < a.data.size(); ++i) m = std::max(m, std::abs(double(a.data[i]) - double(b.data[i])));
  return m;
}

inline double max_abs(const Tensor& a) {
  double m = 0;
  for (float v : a.data) m = std::max(m, std::abs(double(v)));
  return m;
}

// The source model's forward pass (double, scalar loops) in which each layer's
// attention score is, with the layer's RopePlan (pairs as complex numbers re + i im,
// mix and part complex):
//   k'_t       = sum_{j,f} conj(mix[(j,f), a]) k_{j, freqs[f]}    rope key pair t = (group, a)
//   q'_{h,t}   = sum_f conj(part[(j(h),f), a]) q_{h, freqs[f]}
//   k_nope_j   = k_j - sum_t part[(j,f), a] k'_t   (at the pairs of t's group)
//   score      = ( q_h . k_nope_j  +  sum_t R_{m w_t} q'_{h,t} . R_{n w_t} k'_t ) / sqrt(d)
// with w_t the source frequency of plan.slot_freq[t]: the source attention with the
// rotation removed from everything but the rope key.
//
// Qwen3 sources (c.qk_norm; convert/qk_norm_fold.h), with the constants tau (per layer,
// per query head) and sigma (per layer, per kv head) of the conversion (its report):
// the split runs on the key sigma_j gamma_k (.) k_j; `cached` queries are exact,
// gamma_q (.) q_h / rms(q_h), and scores against token n are multiplied by
// s_j(n) / sigma_j, s_j = 1/rms(k_j); calibrated queries are tau_h gamma_q (.) q_h and
// scores keep no per-token scale.
struct QkReference {
  bool cached = true;
  std::vector<std::vector<double>> tau, sigma;
};

inline std::vector<std::vector<double>> rope_removed_forward(const Model& m, const std::vector<RopePlan>& plans,
                                                             const std::vector<int32_t>& tokens,
                                                             const QkReference* qk = nullptr) {
  const ModelConfig& c = m.config;
  const ModelWeights& W = m.weights;
  const int64_t n = int64_t(tokens.size()), D = c.hidden_size, d = c.head_dim;
  const int64_t H = c.num_heads, J = c.num_kv_heads, g = H / J;
  const auto inv_freq = naive_inv_freq(c);
  auto coords = [&](int64_t i) {
    return c.rope_layout == RopeLayout::Half ? std::pair<int64_t, int64_t>{i, i + d / 2}
                                             : std::pair<int64_t, int64_t>{2 * i, 2 * i + 1};
  };
  Tensor embed_scratch;
  const float* embed = f32_or_convert(W.embed, embed_scratch);
  std::vector<std::vector<double>> h(n, std::vector<double>(D));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < D; ++i) h[t][i] = embed[int64_t(tokens[t]) * D + i];

  for (size_t l = 0; l < W.layers.size(); ++l) {
    const auto& L = W.layers[l];
    const RopePlan& plan = plans[l];
    const int64_t T = plan.d_r / 2;
    // Per token: q, k_nope, v, the rope keys [T][2] and rope queries [H][T][2].
    std::vector<std::vector<double>> q(n), kn(n), v(n);
    std::vector<std::vector<double>> kscale(n, std::vector<double>(J, 1.0));  // s_j(n) / sigma_j (cached)
    std::vector<std::vector<std::array<double, 2>>> kr(n, std::vector<std::array<double, 2>>(T));
    std::vector<std::vector<std::array<double, 2>>> qr(n, std::vector<std::array<double, 2>>(H * T));
    for (int64_t t = 0; t < n; ++t) {
      const auto x = naive_rmsnorm(h[t], L.attn_norm, c.rms_norm_eps);
      q[t] = naive_linear(L.wq, x, &L.bq);
      auto k = naive_linear(L.wk, x, &L.bk);
      if (c.qk_norm) {
        if (!qk) throw std::invalid_argument("rope_removed_forward: a qk_norm model needs its QkReference");
        Tensor gq_s, gk_s;
        const float* gq = f32_or_convert(L.q_norm, gq_s);
        const float* gk = f32_or_convert(L.k_norm, gk_s);
        auto inv_rms = [&](const std::vector<double>& v, int64_t h) {
          double ss = 0;
          for (int64_t i = 0; i < d; ++i) ss += v[h * d + i] * v[h * d + i];
          return 1.0 / std::sqrt(ss / double(d) + c.rms_norm_eps);
        };
        for (int64_t hh = 0; hh < H; ++hh) {
          const double f = qk->cached ? inv_rms(q[t], hh) : qk->tau[l][hh];
          for (int64_t i = 0; i < d; ++i) q[t][hh * d + i] *= f * gq[i];
        }
        for (int64_t j = 0; j < J; ++j) {
          const double sj = qk->sigma[l][j];
          if (qk->cached) kscale[t][j] = inv_rms(k, j) / sj;
          for (int64_t i = 0; i < d; ++i) k[j * d + i] *= sj * gk[i];
        }
      }
      v[t] = naive_linear(L.wv, x, &L.bv);
      kn[t] = k;
      for (int64_t s = 0; s < T; ++s) {
        const auto [gi, a] = plan.slots[s];
        const RopeGroup& grp = plan.groups[gi];
        const int64_t F = int64_t(grp.freqs.size());
        std::complex<double> kp = 0;
        for (int64_t j = 0; j < J; ++j)
          for (int64_t f = 0; f < F; ++f) {
            const auto [re, im] = coords(grp.freqs[f]);
            const std::complex<double> mix(grp.mix(j * F + f, a), grp.mix_im(j * F + f, a));
            kp += std::conj(mix) * std::complex<double>(k[j * d + re], k[j * d + im]);
          }
        kr[t][s] = {kp.real(), kp.imag()};
        for (int64_t j = 0; j < J; ++j)
          for (int64_t f = 0; f < F; ++f) {
            const auto [re, im] = coords(grp.freqs[f]);
            const std::complex<double> part(grp.part(j * F + f, a), grp.part_im(j * F + f, a));
            const std::complex<double> rope = part * kp;
            kn[t][j * d + re] -= rope.real();
            kn[t][j * d + im] -= rope.imag();
            for (int64_t hh = j * g; hh < (j + 1) * g; ++hh) {
              const std::complex<double> qp = std::conj(part) * std::complex<double>(q[t][hh * d + re], q[t][hh * d + im]);
              qr[t][hh * T + s][0] += qp.real();
              qr[t][hh * T + s][1] += qp.imag();
            }
          }
      }
    }
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> att(H * d, 0.0);
      for (int64_t hh = 0; hh < H; ++hh) {
        const int64_t j = hh / g;
        std::vector<double> sc(t + 1);
        double mx = -1e300;
        for (int64_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += q[t][hh * d + i] * kn[u][j * d + i];
          for (int64_t s = 0; s < T; ++s) {  // q'.R_{(u-t) w} k': rotation by the relative position
            const double ang = double(u - t) * inv_freq[plan.slot_freq[s]];
            const auto& kp = kr[u][s];
            const auto& qp = qr[t][hh * T + s];
            const double rre = kp[0] * std::cos(ang) - kp[1] * std::sin(ang);
            const double rim = kp[0] * std::sin(ang) + kp[1] * std::cos(ang);
            dot += qp[0] * rre + qp[1] * rim;
          }
          sc[u] = dot * kscale[u][j] / std::sqrt(double(d));
          mx = std::max(mx, sc[u]);
        }
        double z = 0;
        for (auto& e : sc) z += (e = std::exp(e - mx));
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < d; ++i) att[hh * d + i] += sc[u] / z * v[u][j * d + i];
      }
      const auto o = naive_linear(L.wo, att);
      for (int64_t i = 0; i < D; ++i) h[t][i] += o[i];
    }
    naive_ffn_residual(c, L, h);
  }
  return naive_logits(c, W, h);
}

inline double max_abs_diff(const Tensor& a, const std::vector<std::vector<double>>& b) {
  double m = 0;
  const int64_t V = a.dim(1);
  for (size_t t = 0; t < b.size(); ++t)
    for (int64_t i = 0; i < V; ++i) m = std::max(m, std::abs(double(a.data[t * V + i]) - b[t][i]));
  return m;
}

}  // namespace mlar::test
