// An independent reference forward pass for the runtime tests: straight scalar loops
// in double, no ops, no BLAS, no cache; everything (RoPE frequencies included) is
// recomputed here from the config as the Hugging Face code defines it.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace mlar::test {

// Inverse frequencies as transformers computes them (default / linear / llama3).
inline std::vector<double> naive_inv_freq(const ModelConfig& c) {
  const int64_t d = c.head_dim;
  std::vector<double> f(d / 2);
  for (int64_t i = 0; i < d / 2; ++i) f[i] = 1.0 / std::pow(c.rope_theta, double(2 * i) / double(d));
  const auto& s = c.rope_scaling;
  if (s.type == RopeScaling::Type::Linear) {
    for (auto& x : f) x /= s.factor;
  } else if (s.type == RopeScaling::Type::Llama3) {
    const double old_len = double(s.original_max_position);
    const double low_freq_wavelen = old_len / s.low_freq_factor;
    const double high_freq_wavelen = old_len / s.high_freq_factor;
    for (auto& x : f) {
      const double wavelen = 2 * M_PI / x;
      // inv_freq_llama = where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
      const double llama = wavelen > low_freq_wavelen ? x / s.factor : x;
      const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      const double smoothed = (1 - smooth) * llama / s.factor + smooth * llama;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      x = medium ? smoothed : llama;
    }
  }
  return f;
}

// y[o] = sum_i W[o, i] x[i] (+ b[o]); weights of any float dtype, read as their
// exact float32 values.
inline std::vector<double> naive_linear(const TypedTensor& W, const std::vector<double>& x,
                                        const TypedTensor* b = nullptr) {
  const int64_t out = W.dim(0), in = W.dim(1);
  Tensor w_scratch, b_scratch;
  const float* w = f32_or_convert(W, w_scratch);
  const float* bias = (b && !b->empty()) ? f32_or_convert(*b, b_scratch) : nullptr;
  std::vector<double> y(out);
  for (int64_t o = 0; o < out; ++o) {
    double s = bias ? bias[o] : 0.0;
    for (int64_t i = 0; i < in; ++i) s += double(w[o * in + i]) * x[i];
    y[o] = s;
  }
  return y;
}

inline std::vector<double> naive_rmsnorm(const std::vector<double>& x, const TypedTensor& weight, double eps) {
  Tensor scratch;
  const float* w = f32_or_convert(weight, scratch);
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

// RMSNorm of every head (d values) of v with the weight w ([d]), in double.
inline void naive_head_rmsnorm(std::vector<double>& v, int64_t d, const TypedTensor& w, double eps) {
  for (size_t h = 0; h * d < v.size(); ++h) {
    std::vector<double> head(v.begin() + long(h * d), v.begin() + long((h + 1) * d));
    head = naive_rmsnorm(head, w, eps);
    std::copy(head.begin(), head.end(), v.begin() + long(h * d));
  }
}

// Rotates every head of v (heads of size d) for position pos.
inline void naive_rope(std::vector<double>& v, int64_t d, int64_t pos, const std::vector<double>& inv_freq,
                       RopeLayout layout) {
  for (size_t h = 0; h * d < v.size(); ++h) {
    double* x = v.data() + h * d;
    for (int64_t i = 0; i < d / 2; ++i) {
      const int64_t a = layout == RopeLayout::Half ? i : 2 * i;
      const int64_t b = layout == RopeLayout::Half ? i + d / 2 : 2 * i + 1;
      const double ang = double(pos) * inv_freq[i];
      const double re = x[a], im = x[b];
      x[a] = re * std::cos(ang) - im * std::sin(ang);
      x[b] = re * std::sin(ang) + im * std::cos(ang);
    }
  }
}

// h[t] += W_down (silu(W_gate x) * W_up x), x = rmsnorm(h[t]): a layer's SwiGLU MLP
// with its residual, for every position.
inline void naive_ffn_residual(const ModelConfig& c, const LayerWeights& L, std::vector<std::vector<double>>& h) {
  for (auto& ht : h) {
    const auto x = naive_rmsnorm(ht, L.ffn_norm, c.rms_norm_eps);
    auto gate = naive_linear(L.w_gate, x);
    const auto up = naive_linear(L.w_up, x);
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
    const auto down = naive_linear(L.w_down, gate);
    for (size_t i = 0; i < ht.size(); ++i) ht[i] += down[i];
  }
}

// Logits of every position: the final norm, then lm_head (or the tied embedding).
inline std::vector<std::vector<double>> naive_logits(const ModelConfig& c, const ModelWeights& W,
                                                     const std::vector<std::vector<double>>& h) {
  std::vector<std::vector<double>> logits(h.size());
  const TypedTensor& head = W.output();
  for (size_t t = 0; t < h.size(); ++t) logits[t] = naive_linear(head, naive_rmsnorm(h[t], W.final_norm, c.rms_norm_eps));
  return logits;
}

// Logits [n][V] for every position of `tokens` (positions 0 .. n-1).
inline std::vector<std::vector<double>> naive_forward(const Model& m, const std::vector<int32_t>& tokens) {
  const ModelConfig& c = m.config;
  const ModelWeights& W = m.weights;
  const int64_t n = int64_t(tokens.size()), D = c.hidden_size, d = c.head_dim;
  const int64_t H = c.num_heads, J = c.num_kv_heads, g = H / J;
  const auto inv_freq = naive_inv_freq(c);

  Tensor embed_scratch;
  const float* embed = f32_or_convert(W.embed, embed_scratch);
  std::vector<std::vector<double>> h(n, std::vector<double>(D));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < D; ++i) h[t][i] = embed[int64_t(tokens[t]) * D + i];

  for (const auto& L : W.layers) {
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (int64_t t = 0; t < n; ++t) {
      const auto x = naive_rmsnorm(h[t], L.attn_norm, c.rms_norm_eps);
      q[t] = naive_linear(L.wq, x, &L.bq);
      k[t] = naive_linear(L.wk, x, &L.bk);
      v[t] = naive_linear(L.wv, x, &L.bv);
      if (c.qk_norm) {  // Qwen3: each head of q and k through its RMSNorm before RoPE
        naive_head_rmsnorm(q[t], d, L.q_norm, c.rms_norm_eps);
        naive_head_rmsnorm(k[t], d, L.k_norm, c.rms_norm_eps);
      }
      naive_rope(q[t], d, t, inv_freq, c.rope_layout);
      naive_rope(k[t], d, t, inv_freq, c.rope_layout);
    }
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> att(H * d, 0.0);
      for (int64_t hh = 0; hh < H; ++hh) {
        const int64_t j = hh / g;
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int64_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += q[t][hh * d + i] * k[u][j * d + i];
          s[u] = dot / std::sqrt(double(d));
          mx = std::max(mx, s[u]);
        }
        double z = 0;
        for (auto& e : s) z += (e = std::exp(e - mx));
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < d; ++i) att[hh * d + i] += s[u] / z * v[u][j * d + i];
      }
      const auto o = naive_linear(L.wo, att);
      for (int64_t i = 0; i < D; ++i) h[t][i] += o[i];
    }
    naive_ffn_residual(c, L, h);
  }
  return naive_logits(c, W, h);
}

// Perplexity of `ids` by the protocol of runtime/perplexity.h, with naive_forward.
inline double naive_perplexity(const Model& m, const std::vector<int32_t>& ids, int64_t ctx, int64_t* scored = nullptr) {
  double nll = 0;
  int64_t count = 0;
  for (size_t s = 0; s < ids.size(); s += size_t(ctx - 1)) {
    const size_t k = std::min(size_t(ctx - 1), ids.size() - s);
    std::vector<int32_t> in{m.config.bos_token_id};
    in.insert(in.end(), ids.begin() + long(s), ids.begin() + long(s + k - 1));
    const auto lg = naive_forward(m, in);
    for (size_t i = 0; i < k; ++i) {
      double mx = -1e300, z = 0;
      for (double v : lg[i]) mx = std::max(mx, v);
      for (double v : lg[i]) z += std::exp(v - mx);
      nll += std::log(z) + mx - lg[i][ids[s + i]];
      ++count;
    }
  }
  if (scored) *scored = count;
  return std::exp(nll / double(count));
}

}  // namespace mlar::test
