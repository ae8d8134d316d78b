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
#include "runtime/carried_states.h"
#include "tensor/device.h"

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
  // The same without the second moment (summed elsewhere, then add_moment_sum).
  void add_except_moment(const float* x, int64_t n);
  void add_moment_sum(const std::vector<double>& upper, int64_t count) { moment_.add_sum(upper, count); }
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

// Layer `layer`'s statistics from the carried states' attention inputs: the second moment
// on the states' device where it sums it (a GPU), the rest from host copies of the inputs
// (only the windows the histogram reads when there is no reservoir).
LayerStats layer_stats(const CarriedStates& states, const Model& src, int64_t layer, const StatsWanted& want);

// Every layer's statistics from one pass over the source model (its states carried
// layer by layer on `device`).
std::vector<LayerStats> source_pass(const Model& src, const CalibWindows& w, const StatsWanted& want, bool progress,
                                    Device device = Device::Cpu);

// Layer `layer`'s statistics with layers < layer given by (cfg, converted).
LayerStats hybrid_pass(const Model& src, const ModelConfig& cfg, const std::vector<MlaLayerWeights>& converted,
                       int64_t layer, const CalibWindows& w, const StatsWanted& want,
                       const std::function<void(int64_t, int64_t)>& progress);

// Perplexity (perplexity.h protocol, window ctx) of the source with layers <
// layers.size() replaced by MLA (cfg). On a GPU only the source (no layers) or a whole
// MLA model (every layer) runs.
double hybrid_perplexity(const Model& src, const ModelConfig& cfg, const std::vector<MlaLayerWeights>& layers,
                         std::span<const int32_t> ids, int64_t ctx, Device device = Device::Cpu);

// The MLA model (config cfg, one MLA layer per source layer) over the source's
// embedding, norms, MLP and output head.
Model mla_model(const Model& src, const ModelConfig& cfg, std::vector<MlaLayerWeights> layers);

}  // namespace mlar
