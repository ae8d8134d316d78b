#include "convert/calib_run.h"

#include "runtime/session.h"
#include "util/error.h"

namespace mlar {
namespace {

// Thrown by the observer of the last layer wanted, caught by the window loop: the
// rest of the forward pass is not needed.
struct StopAfterLayer {};

class ObservedAttention final : public Attention {
 public:
  ObservedAttention(std::unique_ptr<Attention> inner, int64_t layer, bool stop, const LayerObserver* observe)
      : inner_(std::move(inner)), layer_(layer), stop_(stop), observe_(observe) {}
  std::string kind() const override { return inner_->kind(); }
  std::unique_ptr<LayerCache> make_cache(DType dtype) const override { return inner_->make_cache(dtype); }
  void forward(const float* x, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws,
               float* out) const override {
    if (observe_) (*observe_)(layer_, x, n);
    if (stop_) throw StopAfterLayer{};
    inner_->forward(x, n, pos0, cache, ws, out);
  }

 private:
  std::unique_ptr<Attention> inner_;
  int64_t layer_;
  bool stop_;
  const LayerObserver* observe_;
};

}  // namespace

int64_t CalibWindows::count() const {
  if (len < 2) return 0;
  int64_t n = static_cast<int64_t>(ids.size());
  if (max_tokens > 0) n = std::min(n, max_tokens / len * (len - 1));
  return n / (len - 1);
}

std::vector<int32_t> CalibWindows::window(int64_t i) const {
  std::vector<int32_t> w{bos};
  const auto* b = ids.data() + i * (len - 1);
  w.insert(w.end(), b, b + (len - 1));
  return w;
}

TokenWindows CalibWindows::all() const {
  TokenWindows out;
  for (int64_t i = 0; i < count(); ++i) out.push_back(window(i));
  return out;
}

void check_calib_windows(const CalibWindows& w, const std::string& what) {
  if (w.len < 2) fail("--calib-len {} must be at least 2 (BOS and one token)", w.len);
  if (static_cast<int64_t>(w.ids.size()) < w.len - 1)
    fail("{}: {} tokens, fewer than one calibration window of --calib-len {} ({} tokens after BOS)", what,
         w.ids.size(), w.len, w.len - 1);
  if (w.max_tokens > 0 && w.max_tokens < w.len)
    fail("--calib-tokens {} is less than one window of --calib-len {}", w.max_tokens, w.len);
}

void observe_attention_inputs(const Model& model, std::vector<std::unique_ptr<Attention>> attention,
                              const CalibWindows& windows, int64_t last_layer, const LayerObserver& observe,
                              const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t L = static_cast<int64_t>(attention.size());
  if (last_layer < 0) last_layer = L - 1;
  std::vector<std::unique_ptr<Attention>> wrapped;
  for (int64_t l = 0; l < L; ++l) {
    const bool watch = l <= last_layer;
    wrapped.push_back(std::make_unique<ObservedAttention>(std::move(attention[static_cast<size_t>(l)]), l,
                                                          watch && l == last_layer && last_layer < L - 1,
                                                          watch ? &observe : nullptr));
  }
  auto decoder = std::make_shared<const Decoder>(model, std::move(wrapped));
  SessionOptions so;
  so.max_tokens = windows.len;
  Session session(decoder, so);
  const int64_t n = windows.count();
  for (int64_t i = 0; i < n; ++i) {
    session.reset();
    const std::vector<int32_t> w = windows.window(i);
    try {
      session.forward(w, Logits::Last);
    } catch (const StopAfterLayer&) {
    }
    if (progress) progress(i + 1, n);
  }
}

}  // namespace mlar
