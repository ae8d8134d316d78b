// GGUF files (versions 2 and 3, little-endian): a bounds-checked reader over a
// memory map. Every count, length and offset is checked against the file size, so
// a malformed file gives one error line naming it, never a crash.
//
// Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count, metadata
// (string key, u32 type, value), tensor infos (string name, u32 n_dims, u64 ne[n_dims],
// u32 ggml type, u64 offset), padding to the alignment (`general.alignment`, default
// 32), tensor data. Strings are u64 length + bytes; arrays are u32 item type, u64
// count, items.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <map>
#include <vector>

#include "io/gguf_tensor_types.h"
#include "io/gguf_value.h"
#include "tensor/tensor.h"
#include "util/mapped_file.h"

namespace mlar {

constexpr uint32_t kGgufDefaultAlignment = 32;

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the fastest (innermost) dimension
  uint32_t type = 0;        // ggml type id (GgmlType)
  uint64_t offset = 0;      // from the start of the data section
  uint64_t nbytes = 0;

  int64_t numel() const;
  // Our order, outermost first (ne reversed): ne = [in, out] is Shape [out, in].
  Shape shape() const;
};

class GgufFile {
 public:
  // Maps and parses `path`; throws mlar::Error "<path>: <problem>" on anything malformed.
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the data section
  uint64_t file_size() const { return file_.size(); }

  const GgufMetadata& metadata() const { return meta_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // file order
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  bool has_tensor(std::string_view name) const { return find_tensor(name) != nullptr; }
  // Throws "<path>: missing tensor NAME".
  const GgufTensorInfo& tensor(std::string_view name) const;

  // The raw bytes of a tensor (any type).
  std::span<const uint8_t> tensor_bytes(const GgufTensorInfo& t) const;
  // A tensor as float32 in our shape order. Only F32, F16 and BF16 are read; other
  // types fail: "<path>: tensor NAME has type Q4_0 (2); only F32, F16, BF16 are supported".
  Tensor read_tensor(const GgufTensorInfo& t) const;
  Tensor read_tensor(std::string_view name) const { return read_tensor(tensor(name)); }

 private:
  void parse();

  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  GgufMetadata meta_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace mlar
