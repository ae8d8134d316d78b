// Loads any supported model: an HF directory (config.json + safetensors), a .gguf,
// or a llama2.c .bin. Weights come back float32; q/k rows of GQA models are
// permuted to the half RoPE layout (Model::file_rope_layout records the file's).
#pragma once
#include <string>

#include "model/model.h"

namespace mlar {

struct LoadOptions {
  std::string tokenizer;  // optional tokenizer file overriding/adding the model's own
};

enum class ModelFormat { HfDir, Gguf, Llama2c };

// Which reader `path` needs (throws a clear error for anything else).
ModelFormat detect_model_format(const std::string& path);

Model load_model(const std::string& path, const LoadOptions& opts = {});

}  // namespace mlar
