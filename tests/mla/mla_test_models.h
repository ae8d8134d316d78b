// Small MLA configs for the runtime tests, a hand-written stored absorption, and the
// exact repeat retrofit of a GQA model built by hand (MLA.md §3), independent of
// src/convert.
#pragma once
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/random_mla_model.h"
#include "runtime/test_models.h"

namespace mlar::test {

struct MlaVariant {
  std::string name;
  bool repeat = false;     // repeat-like (n_r = n_kv, d_n = 0, W_qr) instead of DeepSeek-like
  bool q_lora = false;     // low-rank query (DeepSeek-like only)
  bool bias = false;       // b_q, b_dkv, b_kr
  bool latent_norm = false;
  bool per_layer = false;  // different ranks per layer
  bool absorbed = false;   // random stored-absorbed weights
  RopeLayout layout = RopeLayout::Half;
  RopeScaling::Type scaling = RopeScaling::Type::None;
  int64_t rank = 0;  // 0: the default of the layout
};

inline void PrintTo(const MlaVariant& v, std::ostream* os) { *os << v.name; }

// D 48, 6 heads (2 kv heads of 8 in the source shapes), 2 layers, vocab 97.
inline ModelConfig mla_config(const MlaVariant& v) {
  ModelConfig c = small_config(v.layout);
  c.attention_bias = v.bias;
  c.rope_scaling.type = v.scaling;
  if (v.scaling == RopeScaling::Type::Llama3) {
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.original_max_position = 64;
  } else if (v.scaling == RopeScaling::Type::Linear) {
    c.rope_scaling.factor = 2.0;
  }
  MlaConfig m;
  if (v.repeat) {
    m.rope_mode = RopeMode::Repeat;
    m.kv_lora_rank = v.rank ? v.rank : c.kv_dim();  // 16
    m.qk_nope_head_dim = 0;
    m.qk_rope_head_dim = c.head_dim;
    m.num_rope_heads = c.num_kv_heads;
    m.v_head_dim = c.head_dim;
    m.q_rope_in_dim = c.head_dim;
    m.softmax_scale = 1.0 / std::sqrt(double(c.head_dim));
  } else {
    m.rope_mode = RopeMode::Extend;
    m.kv_lora_rank = v.rank ? v.rank : 20;
    m.qk_nope_head_dim = 6;
    m.qk_rope_head_dim = 4;
    m.num_rope_heads = 1;
    m.v_head_dim = 10;
    m.q_lora_rank = v.q_lora ? 16 : 0;
    m.softmax_scale = 1.0 / std::sqrt(double(6 + 4));
  }
  m.latent_norm = v.latent_norm;
  m.absorbed = v.absorbed;
  if (v.per_layer) m.layer_kv_lora_rank = {m.kv_lora_rank, m.kv_lora_rank - 6};
  c.mla = m;
  return c;
}

inline std::vector<int32_t> mla_random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return ids;
}

// Stored absorption by hand (MLA.md §2), in double:
//   nope rows of W_q[h] -> W_uk[h]^T W_q[h]_nope   [r, in]
//   rope rows of W_q[h] -> W_qr[h] W_q[h]_rope     [R, in] (when W_qr is present)
//   W_o -> W_o blockdiag_h(W_uv[h])                [D, n_h * r]
// (the same on b_q; with q_lora on W_q_b).
inline Model absorb_by_hand(const Model& src) {
  Model m = src;
  MlaConfig& a = *m.config.mla;
  const int64_t H = m.config.num_heads, D = m.config.hidden_size, dn = a.qk_nope_head_dim, dv = a.v_head_dim;
  const int64_t R = a.rope_values(), qin = a.q_rope_width(), qw = dn + qin;
  for (int64_t l = 0; l < m.config.num_layers; ++l) {
    MlaLayerWeights& w = m.weights.layers[size_t(l)].mla;
    const MlaLayerWeights& s = src.weights.layers[size_t(l)].mla;
    const int64_t r = a.rank(l);
    // float32 values of the source tensors read below
    const Tensor wq = (a.q_lora_rank > 0 ? s.wq_b : s.wq).to_f32();
    const Tensor w_uk = s.w_uk.to_f32(), wqr = s.wqr.to_f32(), bq = s.bq.to_f32();
    const Tensor s_wo = s.wo.to_f32(), w_uv = s.w_uv.to_f32();
    const int64_t in = wq.dim(1), qw2 = r + R;
    // Folds W_uk / W_qr into the rows of a query projection (bias: b != null, one column).
    auto fold = [&](const Tensor* b) {
      const int64_t width = b ? 1 : in;
      Tensor out(b ? Shape{H * qw2} : Shape{H * qw2, in});
      auto at = [&](int64_t row, int64_t j) -> double {
        return b ? double(b->data[size_t(row)]) : double(wq.data[size_t(row * in + j)]);
      };
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < width; ++j) {
          for (int64_t k = 0; k < r; ++k) {  // (W_uk[h]^T q_nope)[k] = sum_i W_uk[h][i, k] q_nope[i]
            double acc = 0;
            for (int64_t i = 0; i < dn; ++i)
              acc += double(w_uk.data[size_t((h * dn + i) * r + k)]) * at(h * qw + i, j);
            out.data[size_t((h * qw2 + k) * width + j)] = float(acc);
          }
          for (int64_t k = 0; k < R; ++k) {  // (W_qr[h] q_rope_in)[k]
            double acc = 0;
            if (s.wqr.empty())
              acc = at(h * qw + dn + k, j);
            else
              for (int64_t i = 0; i < qin; ++i)
                acc += double(wqr.data[size_t((h * R + k) * qin + i)]) * at(h * qw + dn + i, j);
            out.data[size_t((h * qw2 + r + k) * width + j)] = float(acc);
          }
        }
      return out;
    };
    (a.q_lora_rank > 0 ? w.wq_b : w.wq) = fold(nullptr);
    if (!s.bq.empty()) w.bq = fold(&bq);
    Tensor wo({D, H * r});
    for (int64_t o = 0; o < D; ++o)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t k = 0; k < r; ++k) {
          double acc = 0;
          for (int64_t i = 0; i < dv; ++i)
            acc += double(s_wo.data[size_t(o * H * dv + h * dv + i)]) * w_uv.data[size_t((h * dv + i) * r + k)];
          wo.data[size_t(o * H * r + h * r + k)] = float(acc);
        }
    w.wo = std::move(wo);
    w.w_uk = w.w_uv = w.wqr = Tensor{};
  }
  a.absorbed = true;
  return m;
}

// The exact repeat retrofit of a GQA model, by hand (MLA.md §3): k_pe = W_k x,
// c = W_v x, q = W_q x, W_qr[h] / W_uv[h] select kv group h / g, W_o kept,
// s = 1/sqrt(d).
inline Model repeat_by_hand(const Model& gqa) {
  Model m = gqa;
  ModelConfig& c = m.config;
  const int64_t H = c.num_heads, d = c.head_dim, J = c.num_kv_heads, g = H / J, R = J * d;
  MlaConfig a;
  a.rope_mode = RopeMode::Repeat;
  a.kv_lora_rank = R;
  a.qk_nope_head_dim = 0;
  a.qk_rope_head_dim = d;
  a.num_rope_heads = J;
  a.v_head_dim = d;
  a.q_rope_in_dim = d;
  a.softmax_scale = 1.0 / std::sqrt(double(d));
  Tensor wqr({H, R, d}), w_uv({H * d, R});
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < d; ++i) {
      wqr.data[size_t((h * R + (h / g) * d + i) * d + i)] = 1.0f;
      w_uv.data[size_t((h * d + i) * R + (h / g) * d + i)] = 1.0f;
    }
  for (auto& L : m.weights.layers) {
    MlaLayerWeights& w = L.mla;
    w.wq = L.wq;
    w.bq = L.bq;
    w.wqr = wqr;
    w.w_dkv = L.wv;
    w.b_dkv = L.bv;
    w.w_kr = L.wk;
    w.b_kr = L.bk;
    w.w_uv = w_uv;
    w.wo = L.wo;
    L.wq = L.wk = L.wv = L.wo = L.bq = L.bk = L.bv = Tensor{};
  }
  c.mla = a;
  return m;
}

}  // namespace mlar::test
