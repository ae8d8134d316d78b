// Random MLA models in (or near) the DeepSeek layout for the export tests, and
// logit comparisons through the runtime.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/test_data.h"
#include "convert/expect_error.h"
#include "io/load_model.h"
#include "model/model.h"
#include "runtime/random_mla_model.h"
#include "runtime/session.h"
#include "util/error.h"

namespace mlar::test {

// Knobs of a DeepSeek-layout random model (what `convert --rope-mode extend` makes).
struct DsKnobs {
  bool q_lora = true;
  bool latent_norm = true;
  bool tied = false;
  RopeLayout layout = RopeLayout::Half;  // load_model / extend keep GQA sources in half
  double eps = 1e-5;
  bool kv_bias = false;          // b_dkv, b_kr (no b_q)
  bool q_bias = false;
  int64_t nope = 16;             // d_n (the source head size in extend)
  double softmax_scale = 0;      // 0: 1/sqrt(d) of a source head of 16 (not DeepSeek's)
  int freq_offset = -1;          // >= 0: rope_inv_freq = source frequencies offset, offset + 2, ...
  RopeScaling scaling;
  int64_t vocab = 96;
  uint64_t seed = 7;
};

inline Model deepseek_like(const DsKnobs& k = {}) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = k.vocab;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.rms_norm_eps = k.eps;
  c.rope_theta = 10000;
  c.rope_scaling = k.scaling;
  c.rope_layout = k.layout;
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = k.tied;
  c.attention_bias = k.kv_bias || k.q_bias;
  MlaConfig a;
  a.rope_mode = RopeMode::Extend;
  a.kv_lora_rank = 24;
  a.qk_nope_head_dim = k.nope;
  a.qk_rope_head_dim = 8;
  a.num_rope_heads = 1;
  a.v_head_dim = 16;
  a.q_lora_rank = k.q_lora ? 32 : 0;
  a.latent_norm = k.latent_norm;
  a.softmax_scale = k.softmax_scale > 0 ? k.softmax_scale : 1.0 / std::sqrt(16.0);
  if (k.freq_offset >= 0)  // every 2nd frequency of the source's head of 16
    for (int64_t j = 0; j < 4; ++j) a.rope_inv_freq.push_back(std::pow(10000.0, -2.0 * (2 * j + k.freq_offset) / 16.0));
  c.mla = a;
  Model m = random_mla_model(c, k.seed);
  // Embeddings ~ N(0, 1/16): a tied head then gives logits of a few units, like the
  // untied one, so 1e-5 compares to rounding at the scale of real logits.
  float* embed = m.weights.embed.ptr();  // [V, D]
  for (int64_t i = 0; i < m.weights.embed.numel(); ++i) embed[i] *= 0.25f;
  for (auto& L : m.weights.layers)
    if (!k.q_bias) L.mla.bq = Tensor{};
    else if (!k.kv_bias) L.mla.b_dkv = L.mla.b_kr = Tensor{};
  m.source = "random-deepseek";
  return m;
}

inline std::vector<int32_t> test_ids(int64_t vocab, int n = 40) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>((i * 37 + 11) % vocab));
  return ids;
}

inline Tensor all_logits(const Model& m, const std::vector<int32_t>& ids, MlaEval eval = MlaEval::Auto) {
  SessionOptions o;
  o.max_tokens = static_cast<int64_t>(ids.size());
  o.mla_eval = eval;
  Session s(m, o);
  return s.forward(ids, Logits::All);
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape != b.shape) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.data.size(); ++i) d = std::max(d, std::abs(double(a.data[i]) - double(b.data[i])));
  return d;
}

inline double max_abs(const Tensor& a) {
  double d = 0;
  for (float x : a.data) d = std::max(d, std::abs(double(x)));
  return d;
}

// Logits of `a` and `b` on the same ids agree to `tol` (and are not trivially small).
inline void expect_same_logits(const Model& a, const Model& b, double tol = 1e-5) {
  const auto ids = test_ids(a.config.vocab_size);
  const Tensor la = all_logits(a, ids), lb = all_logits(b, ids);
  EXPECT_GT(max_abs(la), 0.5);
  EXPECT_LE(max_abs_diff(la, lb), tol);
}

}  // namespace mlar::test
