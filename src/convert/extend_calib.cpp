#include "convert/extend_calib.h"

#include "backend/open_carried_states.h"
#include "backend/open_sequence.h"
#include "runtime/gqa_attention.h"
#include "runtime/mla_attention.h"
#include "runtime/perplexity.h"
#include "runtime/rope_table.h"
#include "util/error.h"
#include "util/progress.h"

namespace mlar {

LayerStatsBuilder::LayerStatsBuilder(const Model& src, int64_t layer, int64_t window, const StatsWanted& want)
    : src_(&src), layer_(layer), want_(want), moment_(src.config.hidden_size) {
  if (want.attention) hist_ = DistanceHistogram(src.config, window);
  if (want.samples) samples_.emplace(src.config.hidden_size, want.reservoir, 0x5eed + static_cast<uint64_t>(layer));
}

void LayerStatsBuilder::add(const float* x, int64_t n) {
  moment_.add(x, n);
  add_except_moment(x, n);
}

void LayerStatsBuilder::add_except_moment(const float* x, int64_t n) {
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

LayerStats layer_stats(const CarriedStates& states, const Model& src, int64_t layer, const StatsWanted& want) {
  const LayerWeights& L = src.weights.layers[static_cast<size_t>(layer)];
  LayerStatsBuilder b(src, layer, states.len(), want);
  const std::vector<double> sum = states.moment_sum(src.config, L);
  if (sum.empty()) {
    states.attention_inputs(src.config, L, [&](int64_t, const float* x, int64_t n) { b.add(x, n); });
    return b.take();
  }
  b.add_moment_sum(sum, states.windows() * states.len());
  // Host copies only for what reads rows: the reservoir (every window), the histogram (its first tokens).
  int64_t windows = 0;
  if (want.samples || (want.attention && want.attention_tokens <= 0))
    windows = states.windows();
  else if (want.attention)
    windows = std::min(states.windows(), (want.attention_tokens + states.len() - 1) / states.len());
  if (windows > 0)
    states.attention_inputs(src.config, L, [&](int64_t, const float* x, int64_t n) { b.add_except_moment(x, n); },
                            windows);
  return b.take();
}

std::vector<LayerStats> source_pass(const Model& src, const CalibWindows& w, const StatsWanted& want, bool progress,
                                    Device device) {
  const int64_t L = src.config.num_layers;
  const std::unique_ptr<CarriedStates> states = open_carried_states(src, w.all(), device);
  Progress prog("extend: source statistics (layer by layer)", L, progress);
  std::vector<LayerStats> out;
  for (int64_t l = 0; l < L; ++l) {
    out.push_back(layer_stats(*states, src, l, want));
    if (l + 1 < L) states->advance(src.config, l, src.weights.layers[static_cast<size_t>(l)], nullptr);
    prog.update(l + 1);
  }
  prog.finish();
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
                         std::span<const int32_t> ids, int64_t ctx, Device device) {
  SessionOptions so;
  so.max_tokens = ctx;
  PerplexityOptions po;
  po.ctx = ctx;
  if (device != Device::Cpu) {
    const int64_t L = src.config.num_layers;
    if (!layers.empty() && static_cast<int64_t>(layers.size()) != L)
      fail("extend: internal error: {} of {} layers converted, evaluated on {}", layers.size(), L, device_name(device));
    if (layers.empty()) return perplexity(*open_sequence(src, so, device), ids, po).ppl;
    const Model m = mla_model(src, cfg, layers);
    return perplexity(*open_sequence(m, so, device), ids, po).ppl;
  }
  auto decoder = std::make_shared<const Decoder>(src, hybrid_attention(src, cfg, layers));
  Session session(decoder, so);
  return perplexity(session, ids, po).ppl;
}

Model mla_model(const Model& src, const ModelConfig& cfg, std::vector<MlaLayerWeights> layers) {
  Model m;
  m.config = cfg;
  m.weights.embed = src.weights.embed;
  m.weights.final_norm = src.weights.final_norm;
  m.weights.lm_head = src.weights.lm_head;
  m.weights.layers.resize(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerWeights& from = src.weights.layers[l];
    LayerWeights& to = m.weights.layers[l];
    to.attn_norm = from.attn_norm;
    to.ffn_norm = from.ffn_norm;
    to.w_gate = from.w_gate;
    to.w_up = from.w_up;
    to.w_down = from.w_down;
    to.mla = std::move(layers[l]);
  }
  m.tokenizer = src.tokenizer;
  m.source = src.source;
  m.format = "mla";
  m.file_rope_layout = src.file_rope_layout;
  check_weight_shapes(m.config, m.weights, m.source);
  return m;
}

}  // namespace mlar
