// Writing the safetensors of an HF model directory tensor by tensor, in bounded
// memory (models larger than RAM): each tensor's bytes are appended to the open
// shard's temporary data file as they are added; when a shard is full its file
// (header, then the data copied by the kernel) is written under a temporary name;
// finish() renames the shards to their final names and writes the index last.
//
// The files are those write_safetensors_model (safetensors_writer.h) writes for the
// same tensors, shard limit and dtype, byte for byte: model.safetensors when
// everything fits in one shard, else model-00001-of-0000N.safetensors + ... +
// model.safetensors.index.json, split greedily (a tensor that does not fit in the
// open shard starts the next one; a tensor larger than the limit gets a shard of
// its own). Tensors may have different dtypes on disk.
//
// Atomicity is the caller's: the writer works inside an existing directory (an
// AtomicDir's tmp_path()). On its own it only guarantees that nothing it wrote is
// left when it is destroyed before finish() returned (temporary data files,
// shards, and any final name it already renamed).
//
// Memory: one conversion chunk (kStreamChunkElems elements) and the names/shapes
// of the tensors, never a shard's data. Disk: the model plus, transiently, the part
// of one shard not yet copied (copied ranges of the data file are punched out).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/element_stream.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"
#include "util/stream_file.h"

namespace mlar {

// transformers' default max_shard_size ("5GB" = 5 * 10^9 bytes).
constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000ull;

class SafetensorsShardWriter {
 public:
  // `dir` must exist. Final names already present in it are refused at finish()
  // unless `force` (a final name replaced that way is lost if finish() then fails;
  // inside an AtomicDir that cannot matter). max_shard_bytes must be positive.
  explicit SafetensorsShardWriter(std::filesystem::path dir, uint64_t max_shard_bytes = kDefaultMaxShardBytes,
                                  bool force = false);
  ~SafetensorsShardWriter();
  SafetensorsShardWriter(const SafetensorsShardWriter&) = delete;
  SafetensorsShardWriter& operator=(const SafetensorsShardWriter&) = delete;

  // Appends tensor `name` of `shape`, stored as `disk` (F32 | F16 | BF16), from
  // `src` holding shape_numel(shape) values of type `src_dtype` (F32 | F16 | BF16;
  // converted, rounding to nearest even). Refuses an empty, duplicate or non-UTF-8
  // name, "__metadata__", negative dimensions, other dtypes. `src` is read during
  // the call only.
  void add(const std::string& name, DType disk, const Shape& shape, const void* src, DType src_dtype);
  // A float32 tensor.
  void add(const std::string& name, DType disk, const Tensor& t) { add(name, disk, t.shape, t.ptr(), DType::F32); }
  // The bytes on disk produced by `fill` in chunks (element_stream.h).
  void add(const std::string& name, DType disk, const Shape& shape, const ChunkFill& fill);

  // Writes the last shard, renames every shard to its final name, writes
  // model.safetensors.index.json last when there are several, fsyncs the
  // directory. Returns the file names written (relative to the directory), as
  // write_safetensors_model does. The writer is done afterwards.
  std::vector<std::string> finish();

  size_t tensor_count() const { return names_.size(); }
  uint64_t data_bytes() const { return total_bytes_; }  // the index's metadata.total_size
  size_t shards_so_far() const { return shards_.size() + (open_ ? 1 : 0); }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;  // offsets in the shard's data
  };
  struct Shard {
    RemoveOnExit tmp;                // the finished shard file under a temporary name
    std::vector<std::string> names;  // its tensors, in order
  };
  struct Open {
    RemoveOnExit data_path;
    std::unique_ptr<OutFd> data;
    std::vector<Entry> entries;
    uint64_t bytes = 0;
  };

  // Checks the arguments and makes room: returns the shard the tensor goes to.
  Open& begin_tensor(const std::string& name, DType disk, const Shape& shape, uint64_t* bytes);
  void end_tensor(Open& s, const std::string& name, DType disk, const Shape& shape, uint64_t bytes);
  void close_shard();
  void check_usable() const;

  std::filesystem::path dir_;
  uint64_t max_shard_bytes_;
  bool force_;
  std::set<std::string> names_;
  uint64_t total_bytes_ = 0;
  std::unique_ptr<Open> open_;
  std::vector<Shard> shards_;
  std::vector<std::filesystem::path> renamed_;  // final names taken by finish(), removed if it fails
  bool broken_ = false, done_ = false;
};

}  // namespace mlar
