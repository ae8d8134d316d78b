#include "train/params.h"

#include <algorithm>

#include "util/error.h"

namespace mlar::train {

const char* train_scope_name(TrainScope s) { return s == TrainScope::Attention ? "attn" : "all"; }

std::vector<TensorSlot> layer_tensor_slots(LayerWeights& L, const std::string& p) {
  std::vector<TensorSlot> s;
  auto add = [&](const char* name, TypedTensor& t, bool attn) { s.push_back({p + name, &t, attn}); };
  add("attn_norm", L.attn_norm, false);
  add("wq", L.wq, true);
  add("wk", L.wk, true);
  add("wv", L.wv, true);
  add("wo", L.wo, true);
  add("bq", L.bq, true);
  add("bk", L.bk, true);
  add("bv", L.bv, true);
  add("q_norm", L.q_norm, true);
  add("k_norm", L.k_norm, true);
  MlaLayerWeights& m = L.mla;
  add("mla.wq", m.wq, true);
  add("mla.bq", m.bq, true);
  add("mla.wq_a", m.wq_a, true);
  add("mla.q_a_norm", m.q_a_norm, true);
  add("mla.wq_b", m.wq_b, true);
  add("mla.wqr", m.wqr, true);
  add("mla.w_dkv", m.w_dkv, true);
  add("mla.b_dkv", m.b_dkv, true);
  add("mla.kv_norm", m.kv_norm, true);
  add("mla.w_kr", m.w_kr, true);
  add("mla.b_kr", m.b_kr, true);
  add("mla.w_uk", m.w_uk, true);
  add("mla.w_uv", m.w_uv, true);
  add("mla.wo", m.wo, true);
  add("ffn_norm", L.ffn_norm, false);
  add("w_gate", L.w_gate, false);
  add("w_up", L.w_up, false);
  add("w_down", L.w_down, false);
  return s;
}

std::vector<TensorSlot> tensor_slots(ModelWeights& w) {
  std::vector<TensorSlot> s;
  s.push_back({"embed", &w.embed, false});
  for (size_t l = 0; l < w.layers.size(); ++l) {
    auto ls = layer_tensor_slots(w.layers[l], "layers." + std::to_string(l) + ".");
    s.insert(s.end(), ls.begin(), ls.end());
  }
  s.push_back({"final_norm", &w.final_norm, false});
  s.push_back({"lm_head", &w.lm_head, false});
  return s;
}

ModelWeights make_gradients(const ModelWeights& w, TrainScope scope) {
  ModelWeights g;
  g.layers.resize(w.layers.size());
  auto src = tensor_slots(const_cast<ModelWeights&>(w));  // read only
  auto dst = tensor_slots(g);
  for (size_t i = 0; i < src.size(); ++i)
    if (!src[i].tensor->empty() && (scope == TrainScope::All || src[i].attention))
      *dst[i].tensor = Tensor(src[i].tensor->shape);
  return g;
}

void zero_gradients(ModelWeights& g) {
  for (auto& s : tensor_slots(g)) {
    float* p = s.tensor->ptr();
    std::fill(p, p + s.tensor->numel(), 0.0f);
  }
}

std::vector<Param> trainable_params(ModelWeights& w, ModelWeights& g) {
  if (w.layers.size() != g.layers.size()) fail("train: gradients for {} layers, model has {}", g.layers.size(), w.layers.size());
  auto ws = tensor_slots(w);
  auto gs = tensor_slots(g);
  std::vector<Param> p;
  for (size_t i = 0; i < ws.size(); ++i) {
    if (gs[i].tensor->empty()) continue;
    if (gs[i].tensor->shape != ws[i].tensor->shape)
      fail("train: gradient of {} has shape {}, the tensor {}", ws[i].name, shape_str(gs[i].tensor->shape),
           shape_str(ws[i].tensor->shape));
    p.push_back({ws[i].name, ws[i].tensor, gs[i].tensor, ws[i].tensor->ndim() >= 2});
  }
  return p;
}

int64_t param_count(const std::vector<Param>& p) {
  int64_t n = 0;
  for (const auto& x : p) n += x.value->numel();
  return n;
}

}  // namespace mlar::train
