// Writing a GGUF v3 file tensor by tensor, in bounded memory (models larger than
// RAM). Metadata is given up front; each added tensor's bytes go to a temporary
// data file next to the output, padded to the alignment; finish() writes the
// header and tensor infos, then copies the data after them (copy_file_range,
// punching the copied ranges out of the data file). The result is byte for byte
// what GgufWriter (gguf_writer.h) writes for the same metadata and tensors. The
// file appears whole or not at all (AtomicFile); the data file is always removed.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/element_stream.h"
#include "io/gguf_tensor_types.h"
#include "io/gguf_value.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"
#include "util/atomic_output.h"
#include "util/stream_file.h"

namespace mlar {

class GgufStreamWriter {
 public:
  // Refuses an existing `path` unless `force`, a bad general.alignment (not a
  // uint32 power of two), a missing parent directory.
  GgufStreamWriter(std::filesystem::path path, GgufMetadata meta, bool force = false);
  ~GgufStreamWriter();
  GgufStreamWriter(const GgufStreamWriter&) = delete;
  GgufStreamWriter& operator=(const GgufStreamWriter&) = delete;

  // A tensor of `type` (F32, F16 or BF16) with dimensions `ne` in GGUF order
  // (ne[0] fastest; at most 4), from `src` holding its values as `src_dtype`
  // (F32 | F16 | BF16, converted rounding to nearest even).
  void add(const std::string& name, GgmlType type, const std::vector<int64_t>& ne, const void* src,
           DType src_dtype);
  // The same, with the bytes of `type` produced by `fill` in chunks.
  void add(const std::string& name, GgmlType type, const std::vector<int64_t>& ne, const ChunkFill& fill);
  // A float32 tensor in our shape order (outermost first), as GgufWriter::add_tensor.
  void add_tensor(const std::string& name, const Tensor& t, GgmlType type = GgmlType::F32);
  // Raw bytes of any known ggml type (checked against its block layout).
  void add_raw(const std::string& name, const std::vector<int64_t>& ne, uint32_t ggml_type, const void* bytes,
               uint64_t nbytes);

  // Writes the file, fsyncs it and renames it into place.
  void finish();

  uint64_t alignment() const { return align_; }
  size_t tensor_count() const { return infos_.size(); }

 private:
  struct Info {
    std::string name;
    std::vector<int64_t> ne;
    uint32_t type;
    uint64_t offset;  // in the data section
  };
  // Checks and records the tensor; returns its byte count.
  uint64_t begin_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t type);
  void end_tensor(uint64_t start, uint64_t nbytes, const std::string& name);
  void check_usable() const;

  std::string where_;
  GgufMetadata meta_;
  uint64_t align_ = 32;
  AtomicFile out_;
  RemoveOnExit data_path_;
  std::unique_ptr<OutFd> data_;
  std::vector<Info> infos_;
  std::set<std::string> names_;
  bool broken_ = false, done_ = false;
};

}  // namespace mlar
