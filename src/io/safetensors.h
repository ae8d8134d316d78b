// safetensors files: u64 little-endian header size N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}),
// then the data region, which the tensors cover exactly (no gaps, no overlaps).
// The reader maps the file and hands out zero-copy views; every offset is checked
// when the file is opened, so a view never points outside the mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/tensor.h"
#include "util/mapped_file.h"

namespace mlar {

// A tensor inside a mapped file. `data` may be unaligned: read it with memcpy.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // data_offsets, relative to the data region
  const uint8_t* data = nullptr;
  size_t nbytes() const { return static_cast<size_t>(end - begin); }
  int64_t numel() const { return shape_numel(shape); }
};

// float32 copy of a view (F32/F16/BF16). `file` names the file in errors.
Tensor view_to_tensor(const TensorView& v, const std::string& file);

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws mlar::Error "<path>: <what is wrong>".
  explicit SafetensorsFile(const std::string& path);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&&) = default;
  SafetensorsFile& operator=(SafetensorsFile&&) = default;

  const std::string& path() const { return file_.path(); }
  // All tensors, ordered by their position in the data region.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* find(const std::string& name) const;
  // Throws "<path>: no tensor 'name'" when absent.
  const TensorView& get(const std::string& name) const;
  Tensor to_float(const std::string& name) const { return view_to_tensor(get(name), path()); }
  // The "__metadata__" string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Byte offset of the data region in the file (8 + header size).
  uint64_t data_start() const { return data_start_; }

 private:
  MappedFile file_;
  uint64_t data_start_ = 0;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace mlar
