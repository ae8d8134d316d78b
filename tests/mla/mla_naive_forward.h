// An independent reference forward pass of an MLA model, written from MLA.md §2 and
// the header of model/mla.h: scalar loops in double, no ops, no BLAS, no cache, no
// absorption tricks. Every per-head key and value is expanded from the latent, every
// score is summed term by term. Only the RoPE frequency formula and the small
// linear/rmsnorm/rope helpers come from the GQA reference (runtime/naive_forward.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "model/model.h"
#include "runtime/naive_forward.h"

namespace mlar::test {

// Inverse frequencies for rope heads of size d_r (the source's theta and scaling).
inline std::vector<double> naive_rope_freq(const ModelConfig& c) {
  ModelConfig rc = c;
  rc.head_dim = c.mla->qk_rope_head_dim;
  return naive_inv_freq(rc);
}

// Rows [row0, row0 + rows) of W (HF [out, in]) applied to x.
inline std::vector<double> naive_rows(const TypedTensor& W, int64_t row0, int64_t rows, const std::vector<double>& x) {
  const int64_t in = W.dim(W.ndim() - 1);
  Tensor scratch;
  const float* w = f32_or_convert(W, scratch);
  std::vector<double> y(static_cast<size_t>(rows), 0.0);
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t i = 0; i < in; ++i) y[o] += double(w[(row0 + o) * in + i]) * x[i];
  return y;
}

// Logits [n][V] for tokens at positions 0 .. n-1 of an MLA model.
inline std::vector<std::vector<double>> naive_mla_forward(const Model& m, const std::vector<int32_t>& tokens) {
  const ModelConfig& c = m.config;
  const MlaConfig& a = *c.mla;
  const ModelWeights& W = m.weights;
  const int64_t n = int64_t(tokens.size()), D = c.hidden_size, H = c.num_heads;
  const int64_t dn = a.qk_nope_head_dim, dr = a.qk_rope_head_dim, nr = a.num_rope_heads, R = nr * dr,
                dv = a.v_head_dim;
  const auto freq = naive_rope_freq(c);

  Tensor embed_scratch;
  const float* embed = f32_or_convert(W.embed, embed_scratch);
  std::vector<std::vector<double>> h(n, std::vector<double>(D));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < D; ++i) h[t][i] = embed[int64_t(tokens[t]) * D + i];

  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = W.layers[l];
    const MlaLayerWeights& w = L.mla;
    const int64_t r = a.rank(l), qn = a.absorbed ? r : dn;
    const int64_t qin = (a.q_rope_in_dim > 0 && !a.absorbed) ? a.q_rope_in_dim : R, qw = qn + qin;
    // Per token: the latent c [r], the roped rope key [R], per head q_nope [qn] and q_pe [R].
    std::vector<std::vector<double>> lat(n), kpe(n);
    std::vector<std::vector<std::vector<double>>> qnope(n), qpe(n);
    for (int64_t t = 0; t < n; ++t) {
      const auto x = naive_rmsnorm(h[t], L.attn_norm, c.rms_norm_eps);
      std::vector<double> q;
      if (a.q_lora_rank > 0) {
        const auto qa = naive_rmsnorm(naive_linear(w.wq_a, x), w.q_a_norm, c.rms_norm_eps);
        q = naive_linear(w.wq_b, qa, &w.bq);
      } else {
        q = naive_linear(w.wq, x, &w.bq);
      }
      lat[t] = naive_linear(w.w_dkv, x, &w.b_dkv);
      if (a.latent_norm) lat[t] = naive_rmsnorm(lat[t], w.kv_norm, c.rms_norm_eps);
      kpe[t] = naive_linear(w.w_kr, x, &w.b_kr);
      naive_rope(kpe[t], dr, t, freq, c.rope_layout);  // every rope head of d_r
      qnope[t].resize(H);
      qpe[t].resize(H);
      for (int64_t hh = 0; hh < H; ++hh) {
        qnope[t][hh].assign(q.begin() + hh * qw, q.begin() + hh * qw + qn);
        std::vector<double> in(q.begin() + hh * qw + qn, q.begin() + (hh + 1) * qw);
        if (!w.wqr.empty()) in = naive_rows(w.wqr, hh * R, R, in);  // W_qr[h]: [R, qin]
        naive_rope(in, dr, t, freq, c.rope_layout);
        qpe[t][hh] = in;
      }
    }
    for (int64_t t = 0; t < n; ++t) {
      const int64_t per_head = a.absorbed ? r : dv;
      std::vector<double> att(H * per_head, 0.0);
      for (int64_t hh = 0; hh < H; ++hh) {
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int64_t u = 0; u <= t; ++u) {
          double nope = 0;
          if (a.absorbed) {  // q_nope already lives in latent space
            for (int64_t i = 0; i < r; ++i) nope += qnope[t][hh][i] * lat[u][i];
          } else if (dn > 0) {  // k_nope = W_uk[h] c_u
            const auto k = naive_rows(w.w_uk, hh * dn, dn, lat[u]);
            for (int64_t i = 0; i < dn; ++i) nope += qnope[t][hh][i] * k[i];
          }
          double rope = 0;
          for (int64_t i = 0; i < R; ++i) rope += qpe[t][hh][i] * kpe[u][i];
          s[u] = (nope + rope) * a.softmax_scale;
          mx = std::max(mx, s[u]);
        }
        double z = 0;
        for (auto& e : s) z += (e = std::exp(e - mx));
        for (int64_t u = 0; u <= t; ++u) {
          // value: W_uv[h] c_u, or c_u itself when W_uv is folded into W_o
          const auto v = a.absorbed ? lat[u] : naive_rows(w.w_uv, hh * dv, dv, lat[u]);
          for (int64_t i = 0; i < per_head; ++i) att[hh * per_head + i] += s[u] / z * v[i];
        }
      }
      const auto o = naive_linear(w.wo, att);
      for (int64_t i = 0; i < D; ++i) h[t][i] += o[i];
    }
    naive_ffn_residual(c, L, h);
  }
  return naive_logits(c, W, h);
}

}  // namespace mlar::test
