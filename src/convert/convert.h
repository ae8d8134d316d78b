// `mla-retrofit convert`: the choice of RoPE mode, then the conversion and optional
// stored absorption.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "model/model.h"

namespace mlar {

struct ConvertOptions {
  std::string rope_mode = "repeat";  // repeat (exact, MLA.md §3); extend: convert/extend.h (§4)
  bool absorb = false;               // stored absorption (convert/absorb.h)
  int64_t num_kv_heads = 0;          // latent layout; 0 = the source's
  int64_t head_dim = 0;
  std::function<void(int64_t done, int64_t total)> progress;  // per converted layer
};

// "repeat" -> RopeMode::Repeat, "extend" -> RopeMode::Extend; anything else is
// refused as unknown, listing what exists.
RopeMode parse_rope_mode(const std::string& name);

// Converts a GQA model as `opts` asks (the model is consumed). Repeat only: extend
// needs calibration text and goes through convert_extend (convert/extend.h).
Model convert_model(Model&& gqa, const ConvertOptions& opts);

}  // namespace mlar
