#include "runtime/random_model.h"

#include <cmath>
#include <random>

namespace mlar {
namespace {

class Filler {
 public:
  explicit Filler(uint64_t seed) : rng_(seed) {}
  // N(mean, std^2) by Box-Muller on the raw generator output (reproducible everywhere).
  Tensor normal(Shape s, double mean, double std) {
    Tensor t(std::move(s));
    for (auto& v : t.data) v = static_cast<float>(mean + std * gauss());
    return t;
  }

 private:
  double uniform() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; }
  double gauss() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform())), a = 2.0 * 3.14159265358979323846 * uniform();
    spare_ = r * std::sin(a);
    have_spare_ = true;
    return r * std::cos(a);
  }
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool have_spare_ = false;
};

}  // namespace

Model random_model(const ModelConfig& config, uint64_t seed) {
  Model m;
  m.config = config;
  m.source = "random";
  m.format = "random";
  config.validate("random model");
  const ModelConfig& c = m.config;
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const double sD = 1.0 / std::sqrt(static_cast<double>(D)), sQ = 1.0 / std::sqrt(static_cast<double>(c.q_dim())),
               sF = 1.0 / std::sqrt(static_cast<double>(F));
  Filler f(seed);
  auto& W = m.weights;
  W.embed = f.normal({V, D}, 0.0, 1.0);
  W.layers.resize(static_cast<size_t>(c.num_layers));
  for (auto& L : W.layers) {
    L.attn_norm = f.normal({D}, 1.0, 0.1);
    L.wq = f.normal({c.q_dim(), D}, 0.0, sD);
    L.wk = f.normal({c.kv_dim(), D}, 0.0, sD);
    L.wv = f.normal({c.kv_dim(), D}, 0.0, sD);
    L.wo = f.normal({D, c.q_dim()}, 0.0, sQ);
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
