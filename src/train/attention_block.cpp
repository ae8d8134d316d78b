#include "train/attention_block.h"

#include "runtime/rope_table.h"
#include "train/gqa_block.h"
#include "train/mla_block.h"

namespace mlar::train {

std::vector<int64_t> BatchShape::positions() const {
  std::vector<int64_t> p(static_cast<size_t>(rows()));
  for (int64_t r = 0; r < rows(); ++r) p[static_cast<size_t>(r)] = r % len;
  return p;
}

std::unique_ptr<AttentionBlock> make_attention_block(const ModelConfig& c, int64_t layer, const LayerWeights& w) {
  if (c.mla) return std::make_unique<MlaBlock>(c, layer, w.mla);
  return std::make_unique<GqaBlock>(c, w);
}

std::vector<float> mla_rope_inv_freq(const ModelConfig& c) {
  const MlaConfig& m = *c.mla;
  if (m.rope_inv_freq.empty()) return rope_inv_freq(c.rope_theta, m.qk_rope_head_dim, c.rope_scaling);
  return {m.rope_inv_freq.begin(), m.rope_inv_freq.end()};
}

}  // namespace mlar::train
