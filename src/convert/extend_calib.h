// The calibration side of convert_extend (extend.h): per-layer statistics, the
// passes that gather them, and perplexity of partly or fully converted models, all
// through decoders that mix MLA and GQA layers over the source model's embedding,
// norms and MLP (no weights copied).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "convert/attn_stats.h"
#include "convert/calib_run.h"
#include "convert/calib_stats.h"
#include "model/model.h"

namespace mlar {

// What one layer's conversion reads.
struct LayerStats {
  la::Mat S;                         // [D+1, D+1] E[[x;1][x;1]^T]
  DistanceHistogram attention;       // empty unless asked
  std::optional<Reservoir> samples;  // inputs for the RMSNorm fits, when asked
};

struct StatsWanted {
  bool attention = false;  // distance histogram (mean rotation, rope strategy attn)
  bool samples = false;    // reservoir (latent norm, q_lora)
  int64_t reservoir = 4096;
  // The histogram from the first windows up to this many tokens (0 = every window):
  // its per-head averages settle long before the second moment does.
  int64_t attention_tokens = 0;
};

// Accumulates one layer's statistics window by window.
class LayerStatsBuilder {
 public:
  LayerStatsBuilder(const Model& src, int64_t layer, int64_t window, const StatsWanted& want);
  void add(const float* x, int64_t n);  // a whole window's attention input [n, D]
  LayerStats finish() const;
  // The same without copying S (the builder is spent).
  LayerStats take();

 private:
  const Model* src_;
  int64_t layer_;
  StatsWanted want_;
  SecondMoment moment_;
  DistanceHistogram hist_;
  std::optional<Reservoir> samples_;
  int64_t attention_seen_ = 0;  // tokens the histogram has read
};

// Attention layers: MLA (cfg, the given weights) for layers < mla.size(), the
// source's GQA after them.
std::vector<std::unique_ptr<Attention>> hybrid_attention(const Model& src, const ModelConfig& cfg,
                                                         const std::vector<MlaLayerWeights>& mla);

// Every layer's statistics from one pass over the source model.
std::vector<LayerStats> source_pass(const Model& src, const CalibWindows& w, const StatsWanted& want, bool progress);

// Layer `layer`'s statistics with layers < layer given by (cfg, converted).
LayerStats hybrid_pass(const Model& src, const ModelConfig& cfg, const std::vector<MlaLayerWeights>& converted,
                       int64_t layer, const CalibWindows& w, const StatsWanted& want,
                       const std::function<void(int64_t, int64_t)>& progress);

// Perplexity (perplexity.h protocol, window ctx) of the source with layers <
// layers.size() replaced by MLA (cfg).
double hybrid_perplexity(const Model& src, const ModelConfig& cfg, const std::vector<MlaLayerWeights>& layers,
                         std::span<const int32_t> ids, int64_t ctx);

}  // namespace mlar
