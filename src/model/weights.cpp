#include "model/weights.h"

#include <algorithm>

#include "util/error.h"

namespace mlar {
namespace {

void expect(const Tensor& t, const Shape& s, const std::string& name, const std::string& src) {
  if (t.shape != s) fail("{}: tensor {} has shape {}, expected {}", src, name, shape_str(t.shape), shape_str(s));
}

}  // namespace

void check_weight_shapes(const ModelConfig& c, const ModelWeights& w, const std::string& src) {
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  expect(w.embed, {V, D}, "embed", src);
  expect(w.final_norm, {D}, "final_norm", src);
  if (!w.lm_head.empty()) expect(w.lm_head, {V, D}, "lm_head", src);
  if (c.tie_word_embeddings && !w.lm_head.empty()) fail("{}: tied embeddings but a separate lm_head was loaded", src);
  if (!c.tie_word_embeddings && w.lm_head.empty()) fail("{}: missing tensor lm_head (embeddings are not tied)", src);
  if (static_cast<int64_t>(w.layers.size()) != c.num_layers)
    fail("{}: {} layers loaded, config says {}", src, w.layers.size(), c.num_layers);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const auto& L = w.layers[i];
    auto n = [&](const char* t) { return fmt::format("layers.{}.{}", i, t); };
    expect(L.attn_norm, {D}, n("attn_norm"), src);
    expect(L.wq, {c.q_dim(), D}, n("wq"), src);
    expect(L.wk, {c.kv_dim(), D}, n("wk"), src);
    expect(L.wv, {c.kv_dim(), D}, n("wv"), src);
    expect(L.wo, {D, c.q_dim()}, n("wo"), src);
    if (c.attention_bias) {
      expect(L.bq, {c.q_dim()}, n("bq"), src);
      expect(L.bk, {c.kv_dim()}, n("bk"), src);
      expect(L.bv, {c.kv_dim()}, n("bv"), src);
    } else if (!L.bq.empty() || !L.bk.empty() || !L.bv.empty()) {
      fail("{}: layer {} has attention biases but the config has none", src, i);
    }
    expect(L.ffn_norm, {D}, n("ffn_norm"), src);
    expect(L.w_gate, {F, D}, n("w_gate"), src);
    expect(L.w_up, {F, D}, n("w_up"), src);
    expect(L.w_down, {D, F}, n("w_down"), src);
  }
}

int64_t parameter_count(const ModelWeights& w) {
  int64_t n = w.embed.numel() + w.final_norm.numel() + w.lm_head.numel();
  for (const auto& L : w.layers)
    n += L.attn_norm.numel() + L.wq.numel() + L.wk.numel() + L.wv.numel() + L.wo.numel() + L.bq.numel() +
         L.bk.numel() + L.bv.numel() + L.ffn_norm.numel() + L.w_gate.numel() + L.w_up.numel() + L.w_down.numel();
  return n;
}

Tensor permute_rope_rows(const Tensor& t, int64_t d, bool to_half) {
  if (t.empty()) return t;
  const int64_t rows = t.shape[0];
  const int64_t cols = t.ndim() == 1 ? 1 : t.numel() / rows;
  if (rows % d != 0) fail("permute_rope_rows: {} rows is not a multiple of head size {}", rows, d);
  Tensor out(t.shape);
  const int64_t half = d / 2;
  for (int64_t h = 0; h < rows / d; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      // interleaved row 2i <-> half row i ; interleaved row 2i+1 <-> half row i + d/2
      int64_t inter[2] = {h * d + 2 * i, h * d + 2 * i + 1};
      int64_t hal[2] = {h * d + i, h * d + i + half};
      for (int k = 0; k < 2; ++k) {
        int64_t src = to_half ? inter[k] : hal[k];
        int64_t dst = to_half ? hal[k] : inter[k];
        std::copy_n(t.data.begin() + src * cols, cols, out.data.begin() + dst * cols);
      }
    }
  }
  return out;
}

void convert_rope_layout(ModelConfig& c, ModelWeights& w, RopeLayout target) {
  if (c.rope_layout == target) return;
  const bool to_half = target == RopeLayout::Half;
  for (auto& L : w.layers) {
    L.wq = permute_rope_rows(L.wq, c.head_dim, to_half);
    L.wk = permute_rope_rows(L.wk, c.head_dim, to_half);
    L.bq = permute_rope_rows(L.bq, c.head_dim, to_half);
    L.bk = permute_rope_rows(L.bk, c.head_dim, to_half);
  }
  c.rope_layout = target;
}

}  // namespace mlar
