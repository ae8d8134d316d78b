// NumPy .npy files (format 1.0, little-endian float32, C order), for handing
// logits and activations to Python tools (tools/interop) without a JSON detour.
#pragma once
#include <filesystem>

#include "tensor/tensor.h"

namespace mlar {

// Written under a temporary name and renamed into place (refuses an existing
// file unless force).
void write_npy(const std::filesystem::path& path, const Tensor& t, bool force = false);

// Reads a float32 C-order .npy (any rank); throws naming the file otherwise.
Tensor read_npy(const std::string& path);

}  // namespace mlar
