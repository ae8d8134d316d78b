// GGUF (v3) models of architecture `llama`.
#pragma once
#include <string>

#include "model/model.h"

namespace mlar {

// Reads config (from `llama.*` metadata), F32/F16/BF16 tensors (others refused
// with a clear error naming the tensor and its type) and the tokenizer from
// `tokenizer.ggml.*` metadata. q/k rows stay interleaved (rope_layout Interleaved).
Model read_gguf_model(const std::string& path);

}  // namespace mlar
