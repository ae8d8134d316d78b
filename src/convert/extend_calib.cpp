#include "convert/extend_calib.h"

#include "runtime/gqa_attention.h"
#include "runtime/mla_attention.h"
#include "runtime/perplexity.h"
#include "runtime/rope_table.h"
#include "util/progress.h"

namespace mlar {

LayerStatsBuilder::LayerStatsBuilder(const Model& src, int64_t layer, int64_t window, const StatsWanted& want)
    : src_(&src), layer_(layer), want_(want), moment_(src.config.hidden_size) {
  if (want.attention) hist_ = DistanceHistogram(src.config, window);
  if (want.samples) samples_.emplace(src.config.hidden_size, want.reservoir, 0x5eed + static_cast<uint64_t>(layer));
}

void LayerStatsBuilder::add(const float* x, int64_t n) {
  moment_.add(x, n);
  if (want_.attention && (want_.attention_tokens <= 0 || attention_seen_ < want_.attention_tokens)) {
    hist_.add(src_->config, src_->weights.layers[static_cast<size_t>(layer_)], x, n);
    attention_seen_ += n;
  }
  if (samples_) samples_->add(x, n);
}

LayerStats LayerStatsBuilder::finish() const {
  LayerStats s;
  s.S = moment_.mean();
  s.attention = hist_;
  s.samples = samples_;
  return s;
}

LayerStats LayerStatsBuilder::take() {
  LayerStats s;
  s.S = moment_.take_mean();
  s.attention = std::move(hist_);
  s.samples = std::move(samples_);
  return s;
}

std::vector<std::unique_ptr<Attention>> hybrid_attention(const Model& src, const ModelConfig& cfg,
                                                         const std::vector<MlaLayerWeights>& mla) {
  const auto inv_freq = rope_inv_freq(src.config);
  std::vector<std::unique_ptr<Attention>> out;
  for (int64_t l = 0; l < src.config.num_layers; ++l) {
    if (l < static_cast<int64_t>(mla.size()))
      out.push_back(std::make_unique<MlaAttention>(cfg, l, mla[static_cast<size_t>(l)]));
    else
      out.push_back(std::make_unique<GqaAttention>(src.config, src.weights.layers[static_cast<size_t>(l)], inv_freq));
  }
  return out;
}

std::vector<LayerStats> source_pass(const Model& src, const CalibWindows& w, const StatsWanted& want, bool progress) {
  const int64_t L = src.config.num_layers;
  std::vector<LayerStatsBuilder> b;
  for (int64_t l = 0; l < L; ++l) b.emplace_back(src, l, w.len, want);
  Progress prog("extend: source statistics (all layers, one pass)", w.count(), progress);
  observe_attention_inputs(
      src, hybrid_attention(src, src.config, {}), w, -1,
      [&](int64_t l, const float* x, int64_t n) { b[static_cast<size_t>(l)].add(x, n); },
      [&](int64_t done, int64_t) { prog.update(done); });
  prog.finish();
  std::vector<LayerStats> out;
  for (auto& x : b) out.push_back(x.take());  // each sum becomes its S: L (D+1)^2 doubles, not twice that
  return out;
}

LayerStats hybrid_pass(const Model& src, const ModelConfig& cfg, const std::vector<MlaLayerWeights>& converted,
                       int64_t layer, const CalibWindows& w, const StatsWanted& want,
                       const std::function<void(int64_t, int64_t)>& progress) {
  LayerStatsBuilder b(src, layer, w.len, want);
  observe_attention_inputs(
      src, hybrid_attention(src, cfg, converted), w, layer,
      [&](int64_t l, const float* x, int64_t n) {
        if (l == layer) b.add(x, n);
      },
      progress);
  return b.take();
}

double hybrid_perplexity(const Model& src, const ModelConfig& cfg, const std::vector<MlaLayerWeights>& layers,
                         std::span<const int32_t> ids, int64_t ctx) {
  auto decoder = std::make_shared<const Decoder>(src, hybrid_attention(src, cfg, layers));
  SessionOptions so;
  so.max_tokens = ctx;
  Session session(decoder, so);
  PerplexityOptions po;
  po.ctx = ctx;
  return perplexity(session, ids, po).ppl;
}

}  // namespace mlar
