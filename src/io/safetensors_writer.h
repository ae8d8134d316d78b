// Writing safetensors: single files, and HF model directories that shard
// (model-00001-of-0000N.safetensors + model.safetensors.index.json) past a size.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tensor/typed_tensor.h"

namespace mlar {

struct NamedTensor {
  std::string name;
  const TypedTensor* tensor = nullptr;  // any float dtype; converted to the file's on writing
};

// Bytes `tensors` take on disk as `dtype` (the index's metadata.total_size).
uint64_t safetensors_data_bytes(const std::vector<NamedTensor>& tensors, DType dtype);

// Writes one file: header with __metadata__ {"format": "pt"}, padded with spaces
// to a multiple of 8 bytes, then the tensors in the given order converted to
// `dtype` (F32 | F16 | BF16, round to nearest even). Written under a temporary
// name, fsync'd and renamed into place (mlar::AtomicFile); refuses an existing
// `path` unless `force`. Duplicate or empty names are refused.
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors, DType dtype,
                       bool force = false);

// Writes the tensors into the existing directory `dir`: model.safetensors when
// they take at most max_shard_bytes, else shards of at most max_shard_bytes each
// (a larger single tensor gets a shard of its own), named
// model-00001-of-0000N.safetensors, plus model.safetensors.index.json
// ({"metadata": {"total_size"}, "weight_map": {name: shard}}). Every file goes
// through mlar::AtomicFile; the index is renamed into place last. Returns the
// file names written (relative to dir).
std::vector<std::string> write_safetensors_model(const std::filesystem::path& dir,
                                                 const std::vector<NamedTensor>& tensors, DType dtype,
                                                 uint64_t max_shard_bytes, bool force = false);

}  // namespace mlar
