// An independent scalar MLA forward pass: straight loops in double over the general
// form of src/model/mla.h (MLA.md §2), no ops, no cache. Embedding, norms, MLP and
// head are the GQA reference's (tests/runtime/naive_forward.h); only attention is new.
//
//   c      = norm?(W_dkv x + b_dkv)                               [r]
//   k_pe   = RoPE(W_kr x + b_kr)  per rope head of d_r            [n_r * d_r]
//   q      = W_q x + b_q  (or W_q_b rmsnorm(W_q_a x) + b_q)       per head [q_nope | q_rope_in]
//   q_pe_h = RoPE(W_qr[h] q_rope_in_h)  (or RoPE(q_rope_in_h))     [n_r * d_r]
//   score  = (nope_h . c-side + q_pe_h . k_pe) * s, where nope is q_nope_h . W_uk[h] c
//            (absorbed: q_nope_h . c, q_nope_h of width r)
//   o_h    = W_uv[h] sum_n p_n c_n   (absorbed: sum_n p_n c_n, W_o reads r per head)
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "model/model.h"
#include "runtime/naive_forward.h"

namespace mlar::test {

// One MLA attention layer over the normalised inputs xs ([n][D]) -> outputs [n][D].
inline std::vector<std::vector<double>> mla_reference_attention(const ModelConfig& c, int64_t layer,
                                                                 const MlaLayerWeights& w,
                                                                 const std::vector<std::vector<double>>& xs) {
  const MlaConfig& m = *c.mla;
  const int64_t n = int64_t(xs.size()), H = c.num_heads, r = m.rank(layer);
  const int64_t dr = m.qk_rope_head_dim, R = m.rope_values();
  const int64_t qn = m.q_nope_width(layer), qr = m.q_rope_width(), dn = m.qk_nope_head_dim, dv = m.v_head_dim;
  ModelConfig rope_cfg = c;  // RoPE over heads of d_r with the model's theta and scaling
  rope_cfg.head_dim = dr;
  const auto inv_freq = naive_inv_freq(rope_cfg);

  Tensor wqr_scratch;
  const float* wqr = w.wqr.empty() ? nullptr : f32_or_convert(w.wqr, wqr_scratch);  // [H, R, qr]
  std::vector<std::vector<double>> lat(n), kpe(n), qnope(n), qpe(n);  // per token
  for (int64_t t = 0; t < n; ++t) {
    const auto& x = xs[t];
    std::vector<double> q;  // [H * (qn + qr)]
    if (m.q_lora_rank > 0) {
      const auto qa = naive_rmsnorm(naive_linear(w.wq_a, x), w.q_a_norm, c.rms_norm_eps);
      q = naive_linear(w.wq_b, qa, &w.bq);
    } else {
      q = naive_linear(w.wq, x, &w.bq);
    }
    lat[t] = naive_linear(w.w_dkv, x, &w.b_dkv);
    if (m.latent_norm) lat[t] = naive_rmsnorm(lat[t], w.kv_norm, c.rms_norm_eps);
    kpe[t] = naive_linear(w.w_kr, x, &w.b_kr);
    naive_rope(kpe[t], dr, t, inv_freq, c.rope_layout);
    qnope[t].assign(size_t(H * qn), 0.0);
    qpe[t].assign(size_t(H * R), 0.0);
    for (int64_t h = 0; h < H; ++h) {
      const double* qh = q.data() + h * (qn + qr);
      for (int64_t i = 0; i < qn; ++i) qnope[t][h * qn + i] = qh[i];
      for (int64_t o = 0; o < R; ++o) {
        double s = 0;
        if (!wqr) {
          s = qh[qn + o];
        } else {
          for (int64_t i = 0; i < qr; ++i) s += double(wqr[(h * R + o) * qr + i]) * qh[qn + i];
        }
        qpe[t][h * R + o] = s;
      }
    }
    naive_rope(qpe[t], dr, t, inv_freq, c.rope_layout);
  }

  // NoPE keys (naive: W_uk[h] c per head) and values (W_uv[h] c per head).
  std::vector<std::vector<double>> knope(n), val(n);
  for (int64_t t = 0; t < n; ++t) {
    knope[t] = (m.absorbed || dn == 0) ? std::vector<double>{} : naive_linear(w.w_uk, lat[t]);  // [H * dn]
    val[t] = m.absorbed ? std::vector<double>{} : naive_linear(w.w_uv, lat[t]);                  // [H * dv]
  }
  const int64_t ow = m.absorbed ? r : dv;  // per-head width W_o reads
  std::vector<std::vector<double>> out(n);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<double> att(size_t(H * ow), 0.0);
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> s(size_t(t + 1));
      double mx = -1e300;
      for (int64_t u = 0; u <= t; ++u) {
        double dot = 0;
        if (m.absorbed) {
          for (int64_t i = 0; i < r; ++i) dot += qnope[t][h * qn + i] * lat[u][i];
        } else {
          for (int64_t i = 0; i < dn; ++i) dot += qnope[t][h * qn + i] * knope[u][h * dn + i];
        }
        for (int64_t i = 0; i < R; ++i) dot += qpe[t][h * R + i] * kpe[u][i];
        s[u] = dot * m.softmax_scale;
        mx = std::max(mx, s[u]);
      }
      double z = 0;
      for (auto& e : s) z += (e = std::exp(e - mx));
      for (int64_t u = 0; u <= t; ++u)
        for (int64_t i = 0; i < ow; ++i)
          att[h * ow + i] += s[u] / z * (m.absorbed ? lat[u][i] : val[u][h * dv + i]);
    }
    out[t] = naive_linear(w.wo, att);
  }
  return out;
}

// Logits [n][V] for every position of `tokens` (positions 0 .. n-1) of an MLA model.
inline std::vector<std::vector<double>> mla_reference_forward(const Model& m, const std::vector<int32_t>& tokens) {
  const ModelConfig& c = m.config;
  const ModelWeights& W = m.weights;
  const int64_t n = int64_t(tokens.size()), D = c.hidden_size;
  Tensor embed_scratch;
  const float* embed = f32_or_convert(W.embed, embed_scratch);
  std::vector<std::vector<double>> h(n, std::vector<double>(D));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < D; ++i) h[t][i] = embed[int64_t(tokens[t]) * D + i];
  for (size_t l = 0; l < W.layers.size(); ++l) {
    const auto& L = W.layers[l];
    std::vector<std::vector<double>> xs(n);
    for (int64_t t = 0; t < n; ++t) xs[t] = naive_rmsnorm(h[t], L.attn_norm, c.rms_norm_eps);
    const auto a = mla_reference_attention(c, int64_t(l), L.mla, xs);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < D; ++i) h[t][i] += a[t][i];
    naive_ffn_residual(c, L, h);
  }
  return naive_logits(c, W, h);
}

// max over all entries of |a - b|, and max |b| (the logit scale) through `scale`.
inline double max_abs_diff(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b,
                           double* scale = nullptr) {
  double d = 0, s = 0;
  for (size_t t = 0; t < a.size(); ++t)
    for (size_t i = 0; i < a[t].size(); ++i) {
      d = std::max(d, std::abs(a[t][i] - b[t][i]));
      s = std::max(s, std::abs(b[t][i]));
    }
  if (scale) *scale = s;
  return d;
}

}  // namespace mlar::test
