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

}  // namespace mlar::train
