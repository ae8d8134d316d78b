// The tensors of an HF model directory: model.safetensors, or the shards that
// model.safetensors.index.json lists in its weight_map.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/safetensors.h"
#include "tensor/typed_tensor.h"

namespace mlar {

class SafetensorsStore {
 public:
  // Opens `dir`. With an index, only the tensors its weight_map names are visible,
  // each from its own shard. Throws mlar::Error for a missing file, a shard name
  // escaping the directory (absolute, or with a `..` component), a tensor listed in
  // the index but absent from its shard, or anything SafetensorsFile refuses.
  explicit SafetensorsStore(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool sharded() const { return sharded_; }
  // Every visible tensor name, sorted.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return map_.count(name) != 0; }
  // nullptr when absent.
  const TensorView* find(const std::string& name) const;
  // Throws "<dir>: missing tensor NAME" when absent.
  const TensorView& get(const std::string& name) const;
  // Path of the file that holds `name` (which must exist).
  const std::string& file_of(const std::string& name) const;
  // float32 copy (F32/F16/BF16); throws "<dir>: missing tensor NAME" when absent.
  Tensor to_float(const std::string& name) const;
  // to_float after checking the shape first (a wrong file fails before converting):
  // "<file>: tensor NAME has shape [..], expected [..]".
  Tensor to_float(const std::string& name, const Shape& expected) const;
  // The tensor in its stored dtype after the same shape check: a zero-copy view of
  // the mapped shard for matrices (the view keeps the shard mapped), an owned F32
  // copy for vectors (norms, biases: small, and read as float32 by every op).
  // Refuses dtypes other than F32/F16/BF16 naming the file and the tensor.
  TypedTensor typed(const std::string& name, const Shape& expected) const;

 private:
  struct Entry {
    std::shared_ptr<const SafetensorsFile> file;  // also keeps the mapping alive for views
    const TensorView* view;
  };
  std::string dir_;
  bool sharded_ = false;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, Entry> map_;
};

}  // namespace mlar
