#include "runtime/random_model.h"

#include <cmath>

#include "runtime/random_fill.h"

#include "util/error.h"

namespace mlar {

Model random_model(const ModelConfig& config, uint64_t seed) {
  Model m;
  m.config = config;
  m.source = "random";
  m.format = "random";
  config.validate("random model");
  if (config.mla) fail("random_model: the config is MLA; use random_mla_model (runtime/random_mla_model.h)");
  const ModelConfig& c = m.config;
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const double sD = 1.0 / std::sqrt(static_cast<double>(D)), sQ = 1.0 / std::sqrt(static_cast<double>(c.q_dim())),
               sF = 1.0 / std::sqrt(static_cast<double>(F));
  RandomFiller f(seed);
  auto& W = m.weights;
  W.embed = f.normal({V, D}, 0.0, 1.0);
  W.layers.resize(static_cast<size_t>(c.num_layers));
  for (auto& L : W.layers) {
    L.attn_norm = f.normal({D}, 1.0, 0.1);
    L.wq = f.normal({c.q_dim(), D}, 0.0, sD);
    L.wk = f.normal({c.kv_dim(), D}, 0.0, sD);
    L.wv = f.normal({c.kv_dim(), D}, 0.0, sD);
    L.wo = f.normal({D, c.q_dim()}, 0.0, sQ);
    if (c.qk_norm) {  // drawn only for qk_norm models: other models keep their draws
      L.q_norm = f.normal({c.head_dim}, 1.0, 0.1);
      L.k_norm = f.normal({c.head_dim}, 1.0, 0.1);
    }
    if (c.attention_bias) {
      L.bq = f.normal({c.q_dim()}, 0.0, 0.1);
      L.bk = f.normal({c.kv_dim()}, 0.0, 0.1);
      L.bv = f.normal({c.kv_dim()}, 0.0, 0.1);
    }
    L.ffn_norm = f.normal({D}, 1.0, 0.1);
    L.w_gate = f.normal({F, D}, 0.0, sD);
    L.w_up = f.normal({F, D}, 0.0, sD);
    L.w_down = f.normal({D, F}, 0.0, sF);
  }
  W.final_norm = f.normal({D}, 1.0, 0.1);
  if (!c.tie_word_embeddings) W.lm_head = f.normal({V, D}, 0.0, sD);
  check_weight_shapes(c, W, m.source);
  return m;
}

}  // namespace mlar
