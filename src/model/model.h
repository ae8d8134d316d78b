// A loaded model: architecture, weights, tokenizer (may be null), and where it came from.
#pragma once
#include <memory>
#include <string>

#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace mlar {

struct Model {
  ModelConfig config;
  ModelWeights weights;
  std::shared_ptr<const Tokenizer> tokenizer;  // null when none was found or given
  std::string source;  // path it was loaded from
  std::string format;  // "hf", "gguf", "llama2c"
  // The q/k row layout of the file it came from. load_model() keeps every model in
  // the half layout in memory (an exact row permutation), so all formats compute
  // the same floats in the same order and downstream code sees one layout.
  RopeLayout file_rope_layout = RopeLayout::Half;
};

}  // namespace mlar
