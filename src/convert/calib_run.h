// Running calibration text through a model and watching each layer's attention
// input x = rmsnorm(h, attn_norm), without touching the runtime: every layer's
// Attention is wrapped in an observer that passes x on before the real attention
// runs (runtime/attention.h is the seam). A pass can stop after a given layer, so
// the sequential calibration of layer l runs layers 0..l only.
//
// Windows: the ids (no BOS) are cut into windows of len-1 tokens; each runs as
// [BOS, t_1 .. t_{len-1}] in a fresh sequence (as perplexity.h does), so every
// position 0 .. len-1 of every window is one calibration token. Only full windows
// are used; at least one is required.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/attention.h"
#include "runtime/carried_states.h"  // TokenWindows

namespace mlar {

struct CalibWindows {
  std::span<const int32_t> ids;  // tokens, no BOS
  int64_t len = 256;             // window length including BOS
  int64_t max_tokens = 0;        // use at most this many tokens (rounded down to windows); 0 = all
  int32_t bos = 1;

  int64_t count() const;    // windows used
  int64_t tokens() const { return count() * len; }  // positions observed per layer
  std::vector<int32_t> window(int64_t i) const;     // [len]
  TokenWindows all() const;                         // every window used
};

// Throws "<what>: N tokens, fewer than one window of --calib-len L ..." when the ids
// cannot fill one window, and on a window length < 2.
void check_calib_windows(const CalibWindows& w, const std::string& what);

// observe(layer, x, n): x is [n, D], the attention input of `layer` for n tokens.
using LayerObserver = std::function<void(int64_t layer, const float* x, int64_t n)>;

// Runs every window through `model`'s embedding, norms and MLP with the given
// attention per layer (any mix of GQA and MLA layers), calls observe for every layer
// <= last_layer, and stops each window after observing last_layer (-1: run all
// layers). progress(done, total) after each window (may be empty).
void observe_attention_inputs(const Model& model, std::vector<std::unique_ptr<Attention>> attention,
                              const CalibWindows& windows, int64_t last_layer, const LayerObserver& observe,
                              const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace mlar
