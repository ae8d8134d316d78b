#include "model/weights.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace mlar {
namespace {

void expect(const TypedTensor& t, const Shape& s, const std::string& name, const std::string& src) {
  if (t.shape != s) fail("{}: tensor {} has shape {}, expected {}", src, name, shape_str(t.shape), shape_str(s));
}

void expect_opt(const TypedTensor& t, const Shape& s, bool present, const std::string& name, const std::string& src) {
  if (present) {
    expect(t, s, name, src);
  } else if (!t.empty()) {
    fail("{}: tensor {} is present but the MLA config has no place for it", src, name);
  }
}

}  // namespace

void check_mla_layer_shapes(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w, const std::string& src) {
  const MlaConfig& m = *c.mla;
  const int64_t D = c.hidden_size, H = c.num_heads, r = m.rank(layer), rope = m.rope_values();
  const int64_t q_rows = H * (m.q_nope_width(layer) + m.q_rope_width());
  auto n = [&](const char* t) { return fmt::format("layers.{}.mla.{}", layer, t); };
  if (m.q_lora_rank > 0) {
    expect(w.wq_a, {m.q_lora_rank, D}, n("wq_a"), src);
    expect(w.q_a_norm, {m.q_lora_rank}, n("q_a_norm"), src);
    expect(w.wq_b, {q_rows, m.q_lora_rank}, n("wq_b"), src);
    expect_opt(w.wq, {}, false, n("wq"), src);
  } else {
    expect(w.wq, {q_rows, D}, n("wq"), src);
  }
  expect_opt(w.bq, {q_rows}, !w.bq.empty(), n("bq"), src);
  const bool has_qr = m.q_rope_in_dim > 0 && !m.absorbed;
  expect_opt(w.wqr, {H, rope, m.q_rope_in_dim}, has_qr, n("wqr"), src);
  expect_opt(w.q_norm, {m.q_rope_in_dim}, m.qk_norm, n("q_norm"), src);
  expect_opt(w.k_norm, {m.qk_rope_head_dim}, m.qk_norm, n("k_norm"), src);
  const bool scales = m.qk_scale_dim > 0;
  expect_opt(w.wq_scale, {H * m.qk_scale_dim, D}, scales, n("wq_scale"), src);
  expect_opt(w.wk_scale, {m.qk_scale_kv_heads * m.qk_scale_dim, D}, scales, n("wk_scale"), src);
  if (scales && (m.qk_scale_kv_heads <= 0 || H % m.qk_scale_kv_heads != 0))
    fail("{}: mla.qk_scale_kv_heads {} does not divide the {} query heads", src, m.qk_scale_kv_heads, H);
  expect(w.w_dkv, {r, D}, n("w_dkv"), src);
  expect_opt(w.b_dkv, {r}, !w.b_dkv.empty(), n("b_dkv"), src);
  expect_opt(w.kv_norm, {r}, m.latent_norm, n("kv_norm"), src);
  expect(w.w_kr, {rope, D}, n("w_kr"), src);
  expect_opt(w.b_kr, {rope}, !w.b_kr.empty(), n("b_kr"), src);
  expect_opt(w.w_uk, {H * m.qk_nope_head_dim, r}, !m.absorbed && m.qk_nope_head_dim > 0, n("w_uk"), src);
  expect_opt(w.w_uv, {H * m.v_head_dim, r}, !m.absorbed, n("w_uv"), src);
  expect(w.wo, {D, H * (m.absorbed ? r : m.v_head_dim)}, n("wo"), src);
}

void check_weight_shapes(const ModelConfig& c, const ModelWeights& w, const std::string& src) {
  const int64_t D = c.hidden_size, V = c.vocab_size;
  expect(w.embed, {V, D}, "embed", src);
  expect(w.final_norm, {D}, "final_norm", src);
  if (!w.lm_head.empty()) expect(w.lm_head, {V, D}, "lm_head", src);
  if (c.tie_word_embeddings && !w.lm_head.empty()) fail("{}: tied embeddings but a separate lm_head was loaded", src);
  if (!c.tie_word_embeddings && w.lm_head.empty()) fail("{}: missing tensor lm_head (embeddings are not tied)", src);
  if (static_cast<int64_t>(w.layers.size()) != c.num_layers)
    fail("{}: {} layers loaded, config says {}", src, w.layers.size(), c.num_layers);
  for (size_t i = 0; i < w.layers.size(); ++i) check_layer_shapes(c, static_cast<int64_t>(i), w.layers[i], src);
}

void check_layer_shapes(const ModelConfig& c, int64_t layer, const LayerWeights& L, const std::string& src) {
  const int64_t D = c.hidden_size, F = c.intermediate_size;
  const int64_t i = layer;
  auto n = [&](const char* t) { return fmt::format("layers.{}.{}", i, t); };
  expect(L.attn_norm, {D}, n("attn_norm"), src);
  expect(L.ffn_norm, {D}, n("ffn_norm"), src);
  expect(L.w_gate, {F, D}, n("w_gate"), src);
  expect(L.w_up, {F, D}, n("w_up"), src);
  expect(L.w_down, {D, F}, n("w_down"), src);
  if (c.mla) {
    check_mla_layer_shapes(c, i, L.mla, src);
    if (!L.wq.empty() || !L.wk.empty() || !L.wv.empty() || !L.wo.empty() || !L.q_norm.empty() || !L.k_norm.empty())
      fail("{}: layer {} holds both GQA and MLA attention weights", src, i);
    return;
  }
  expect(L.wq, {c.q_dim(), D}, n("wq"), src);
  expect(L.wk, {c.kv_dim(), D}, n("wk"), src);
  expect(L.wv, {c.kv_dim(), D}, n("wv"), src);
  expect(L.wo, {D, c.q_dim()}, n("wo"), src);
  if (c.qk_norm) {
    expect(L.q_norm, {c.head_dim}, n("q_norm"), src);
    expect(L.k_norm, {c.head_dim}, n("k_norm"), src);
  } else if (!L.q_norm.empty() || !L.k_norm.empty()) {
    fail("{}: layer {} has q/k norms but the config has none", src, i);
  }
  if (c.attention_bias) {
    expect(L.bq, {c.q_dim()}, n("bq"), src);
    expect(L.bk, {c.kv_dim()}, n("bk"), src);
    expect(L.bv, {c.kv_dim()}, n("bv"), src);
  } else if (!L.bq.empty() || !L.bk.empty() || !L.bv.empty()) {
    fail("{}: layer {} has attention biases but the config has none", src, i);
  }
}

int64_t parameter_count(const ModelWeights& w) {
  int64_t n = w.embed.numel() + w.final_norm.numel() + w.lm_head.numel();
  for (const auto& L : w.layers)
    n += L.mla.wq.numel() + L.mla.bq.numel() + L.mla.wq_a.numel() + L.mla.q_a_norm.numel() + L.mla.wq_b.numel() +
         L.mla.wqr.numel() + L.mla.wq_scale.numel() + L.mla.wk_scale.numel() + L.mla.q_norm.numel() + L.mla.k_norm.numel() + L.mla.w_dkv.numel() + L.mla.b_dkv.numel() + L.mla.kv_norm.numel() + L.mla.w_kr.numel() +
         L.mla.b_kr.numel() + L.mla.w_uk.numel() + L.mla.w_uv.numel() + L.mla.wo.numel();
  for (const auto& L : w.layers)
    n += L.attn_norm.numel() + L.wq.numel() + L.wk.numel() + L.wv.numel() + L.wo.numel() + L.bq.numel() +
         L.bk.numel() + L.bv.numel() + L.q_norm.numel() + L.k_norm.numel() + L.ffn_norm.numel() + L.w_gate.numel() + L.w_up.numel() + L.w_down.numel();
  return n;
}

DType weight_dtype(const ModelWeights& w) { return w.embed.empty() ? DType::F32 : w.embed.dtype; }

std::vector<TypedTensor*> layer_tensors(LayerWeights& L) {
  MlaLayerWeights& m = L.mla;
  return {&L.attn_norm, &L.wq,     &L.wk,    &L.wv,     &L.wo,     &L.bq,     &L.bk,      &L.bv,
          &L.q_norm,    &L.k_norm, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down, &m.wq,      &m.bq,
          &m.wq_a,      &m.q_a_norm, &m.wq_b, &m.wqr,    &m.q_norm, &m.k_norm, &m.w_dkv,   &m.b_dkv,
          &m.kv_norm,   &m.w_kr,   &m.b_kr,  &m.w_uk,   &m.w_uv,   &m.wo};
}

void cast_matrices(ModelWeights& w, DType dtype) {
  auto cast = [&](TypedTensor& t) {
    if (!t.empty() && t.ndim() >= 2 && t.dtype != dtype) t = t.cast(dtype);
  };
  for (TypedTensor* t : {&w.embed, &w.lm_head}) cast(*t);
  for (auto& L : w.layers)
    for (TypedTensor* t : layer_tensors(L)) cast(*t);
}

int64_t weight_bytes(const ModelWeights& w) {
  int64_t n = static_cast<int64_t>(w.embed.nbytes() + w.final_norm.nbytes() + w.lm_head.nbytes());
  for (auto& L : w.layers)
    for (TypedTensor* t : layer_tensors(const_cast<LayerWeights&>(L))) n += static_cast<int64_t>(t->nbytes());
  return n;
}

void materialize_f32(MlaLayerWeights& m) {
  for (TypedTensor* t : {&m.wq, &m.bq, &m.wq_a, &m.q_a_norm, &m.wq_b, &m.wqr, &m.q_norm, &m.k_norm, &m.w_dkv,
                         &m.b_dkv, &m.kv_norm, &m.w_kr, &m.b_kr, &m.w_uk, &m.w_uv, &m.wo})
    if (!t->empty()) t->mutable_f32();
}

void materialize_f32(LayerWeights& L) {
  for (TypedTensor* t : layer_tensors(L))
    if (!t->empty()) t->mutable_f32();
}

void materialize_f32(ModelWeights& w) {
  for (TypedTensor* t : {&w.embed, &w.final_norm, &w.lm_head})
    if (!t->empty()) t->mutable_f32();
  for (auto& L : w.layers) materialize_f32(L);
}

TypedTensor permute_rope_rows(const TypedTensor& t, int64_t d, bool to_half) {
  if (t.empty()) return t;
  const int64_t rows = t.shape[0];
  const int64_t cols = t.ndim() == 1 ? 1 : t.numel() / rows;
  if (rows % d != 0) fail("permute_rope_rows: {} rows is not a multiple of head size {}", rows, d);
  // A row permutation keeps the dtype: the rows are moved as bytes.
  const size_t row_bytes = static_cast<size_t>(cols) * dtype_size(t.dtype);
  std::vector<uint8_t> buf(t.nbytes());
  const auto* src_bytes = static_cast<const uint8_t*>(t.data());
  const int64_t half = d / 2;
  for (int64_t h = 0; h < rows / d; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      // interleaved row 2i <-> half row i ; interleaved row 2i+1 <-> half row i + d/2
      int64_t inter[2] = {h * d + 2 * i, h * d + 2 * i + 1};
      int64_t hal[2] = {h * d + i, h * d + i + half};
      for (int k = 0; k < 2; ++k) {
        int64_t src = to_half ? inter[k] : hal[k];
        int64_t dst = to_half ? hal[k] : inter[k];
        std::memcpy(buf.data() + static_cast<size_t>(dst) * row_bytes, src_bytes + static_cast<size_t>(src) * row_bytes,
                    row_bytes);
      }
    }
  }
  return TypedTensor::copy_of(t.dtype, t.shape, buf.data());
}

void convert_rope_layout(ModelConfig& c, ModelWeights& w, RopeLayout target) {
  if (c.rope_layout == target) return;
  const bool to_half = target == RopeLayout::Half;
  for (auto& L : w.layers) {
    L.wq = permute_rope_rows(L.wq, c.head_dim, to_half);
    L.wk = permute_rope_rows(L.wk, c.head_dim, to_half);
    L.bq = permute_rope_rows(L.bq, c.head_dim, to_half);
    L.bk = permute_rope_rows(L.bk, c.head_dim, to_half);
    L.q_norm = permute_rope_rows(L.q_norm, c.head_dim, to_half);  // per-coordinate weights move with the rows
    L.k_norm = permute_rope_rows(L.k_norm, c.head_dim, to_half);
  }
  c.rope_layout = target;
}

}  // namespace mlar
