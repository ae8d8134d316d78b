// Writes GGUF v3 files: metadata of every type, tensors as F32, F16 or BF16 (or
// raw bytes of any known ggml type), data aligned to `general.alignment` (32 unless
// that key is set). The file appears whole or not at all (mlar::AtomicFile).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/gguf_tensor_types.h"
#include "io/gguf_value.h"
#include "tensor/tensor.h"
#include "tensor/typed_tensor.h"

namespace mlar {

class GgufWriter {
 public:
  GgufWriter() : meta_("gguf writer") {}

  // Metadata, written in insertion order. set() replaces an existing key in place.
  void set(std::string key, GgufValue v) { meta_.set(std::move(key), std::move(v)); }
  GgufMetadata& metadata() { return meta_; }
  const GgufMetadata& metadata() const { return meta_; }

  // A float tensor (our shape order, outermost first; written as ne reversed),
  // stored as `type` (F32, F16 or BF16). add_tensor converts now and keeps the
  // bytes; add_tensor_ref keeps a reference and converts during write(), so `t`
  // must outlive write() (saves a copy of large models).
  void add_tensor(std::string name, const Tensor& t, GgmlType type = GgmlType::F32);
  void add_tensor(std::string name, const TypedTensor& t, GgmlType type = GgmlType::F32);
  void add_tensor_ref(std::string name, const Tensor& t, GgmlType type = GgmlType::F32) = delete;
  void add_tensor_ref(std::string name, const TypedTensor& t, GgmlType type = GgmlType::F32);
  // Raw bytes of any known ggml type, `ne` in GGUF order (ne[0] fastest). Its size
  // must match the type's block layout.
  void add_raw_tensor(std::string name, std::vector<int64_t> ne, uint32_t ggml_type, std::vector<uint8_t> bytes);

  size_t tensor_count() const { return tensors_.size(); }
  uint64_t alignment() const;  // general.alignment if set, else 32

  // Writes the file (refusing to replace an existing one unless `force`). Errors
  // name `path`; nothing is left behind on failure.
  void write(const std::filesystem::path& path, bool force = false) const;

 private:
  struct Entry {
    std::string name;
    std::vector<int64_t> ne;  // GGUF order
    uint32_t type = 0;
    uint64_t nbytes = 0;
    std::vector<uint8_t> bytes;  // owned data, or empty with `ref` set
    const TypedTensor* ref = nullptr;
  };
  Entry& new_entry(std::string name, const Shape& shape, uint32_t type);

  GgufMetadata meta_;
  std::vector<Entry> tensors_;
};

}  // namespace mlar
