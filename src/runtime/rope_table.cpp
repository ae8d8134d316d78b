#include "runtime/rope_table.h"

#include <cmath>
#include <numbers>

#include "util/error.h"

namespace mlar {

std::vector<float> rope_inv_freq(double theta, int64_t dim, const RopeScaling& sc) {
  if (dim <= 0 || dim % 2 != 0) fail("rope_inv_freq: dimension {} must be positive and even", dim);
  std::vector<float> out(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    double w = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
    switch (sc.type) {
      case RopeScaling::Type::None: break;
      case RopeScaling::Type::Linear: w /= sc.factor; break;
      case RopeScaling::Type::Llama3: {
        const double old_ctx = static_cast<double>(sc.original_max_position);
        const double low_wavelen = old_ctx / sc.low_freq_factor;
        const double high_wavelen = old_ctx / sc.high_freq_factor;
        const double wavelen = 2.0 * std::numbers::pi / w;
        if (wavelen > low_wavelen) {
          w /= sc.factor;  // low frequencies: fully scaled
        } else if (!(wavelen < high_wavelen)) {
          // medium frequencies: interpolate between scaled and unscaled
          const double s = (old_ctx / wavelen - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
          w = (1.0 - s) * w / sc.factor + s * w;
        }
        break;
      }
    }
    out[static_cast<size_t>(i)] = static_cast<float>(w);
  }
  return out;
}

std::vector<float> rope_inv_freq(const ModelConfig& c) { return rope_inv_freq(c.rope_theta, c.head_dim, c.rope_scaling); }

ops::RopePairs rope_pairs(RopeLayout layout) {
  return layout == RopeLayout::Half ? ops::RopePairs::Half : ops::RopePairs::Interleaved;
}

}  // namespace mlar
