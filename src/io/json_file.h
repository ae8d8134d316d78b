// Small shared pieces of the directory writers (HF, MLA, DeepSeek-V3).
#pragma once
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace mlar {

// Writes `j` (indented, trailing newline) through an AtomicFile; refuses an existing
// file unless `force`.
void write_json_file(const std::filesystem::path& path, const nlohmann::json& j, bool force = false);

// config.json's torch_dtype for a safetensors dtype on disk.
const char* torch_dtype_name(DType d);

}  // namespace mlar
