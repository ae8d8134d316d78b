#include "io/safetensors_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open", path);
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON: {}", path, e.what());
  }
}

// A shard name from the index must stay inside the directory: relative, and no
// `..` component. (Symlinks are followed as they are: the HF hub cache keeps its
// snapshot files as links into ../../blobs.)
void check_shard_name(const std::string& index_path, const std::string& shard) {
  if (shard.empty()) fail("{}: empty shard file name in weight_map", index_path);
  if (shard.find('\0') != std::string::npos) fail("{}: shard file name contains a NUL byte", index_path);
  fs::path p(shard);
  if (p.is_absolute() || p.has_root_path())
    fail("{}: shard file '{}' is an absolute path; shards must be inside the model directory", index_path, shard);
  for (const auto& part : p)
    if (part == "..")
      fail("{}: shard file '{}' escapes the model directory ('..' component)", index_path, shard);
}

}  // namespace

SafetensorsStore::SafetensorsStore(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory", dir);
  const fs::path index = fs::path(dir) / kIndex;
  const fs::path single = fs::path(dir) / kSingle;
  if (fs::exists(index, ec)) {
    sharded_ = true;
    const std::string ip = index.string();
    nlohmann::json j = read_json_file(ip);
    if (!j.is_object()) fail("{}: not a JSON object", ip);
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) fail("{}: no weight_map object", ip);
    std::unordered_map<std::string, size_t> opened;  // shard name -> files_ index
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        fail("{}: weight_map entry for '{}' is not a file name", ip, it.key());
      const std::string shard = it.value().get<std::string>();
      auto f = opened.find(shard);
      if (f == opened.end()) {
        check_shard_name(ip, shard);
        const fs::path sp = fs::path(dir) / shard;
        if (!fs::exists(sp, ec))
          fail("{}: shard file {} (listed in {}) does not exist", sp.string(), shard, kIndex);
        files_.push_back(std::make_shared<SafetensorsFile>(sp.string()));
        f = opened.emplace(shard, files_.size() - 1).first;
      }
      const std::shared_ptr<SafetensorsFile>& file = files_[f->second];
      const TensorView* v = file->find(it.key());
      if (!v) fail("{}: tensor {} is listed in {} but absent from this shard", file->path(), it.key(), kIndex);
      map_.emplace(it.key(), Entry{file, v});
    }
  } else if (fs::exists(single, ec)) {
    files_.push_back(std::make_shared<SafetensorsFile>(single.string()));
    for (const auto& v : files_[0]->tensors()) map_.emplace(v.name, Entry{files_[0], &v});
  } else {
    fail("{}: no {} or {} in the directory", dir, kSingle, kIndex);
  }
}

std::vector<std::string> SafetensorsStore::names() const {
  std::vector<std::string> out;
  out.reserve(map_.size());
  for (const auto& [k, v] : map_) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

const TensorView* SafetensorsStore::find(const std::string& name) const {
  auto it = map_.find(name);
  return it == map_.end() ? nullptr : it->second.view;
}

const TensorView& SafetensorsStore::get(const std::string& name) const {
  auto it = map_.find(name);
  if (it == map_.end()) fail("{}: missing tensor {}", dir_, name);
  return *it->second.view;
}

const std::string& SafetensorsStore::file_of(const std::string& name) const {
  auto it = map_.find(name);
  if (it == map_.end()) fail("{}: missing tensor {}", dir_, name);
  return it->second.file->path();
}

Tensor SafetensorsStore::to_float(const std::string& name) const {
  auto it = map_.find(name);
  if (it == map_.end()) fail("{}: missing tensor {}", dir_, name);
  return view_to_tensor(*it->second.view, it->second.file->path());
}

Tensor SafetensorsStore::to_float(const std::string& name, const Shape& expected) const {
  const TensorView* v = find(name);
  if (!v) fail("{}: missing tensor {}", dir_, name);
  if (v->shape != expected)
    fail("{}: tensor {} has shape {}, expected {}", file_of(name), name, shape_str(v->shape), shape_str(expected));
  return to_float(name);
}

TypedTensor SafetensorsStore::typed(const std::string& name, const Shape& expected) const {
  const TensorView* v = find(name);
  if (!v) fail("{}: missing tensor {}", dir_, name);
  if (v->shape != expected)
    fail("{}: tensor {} has shape {}, expected {}", file_of(name), name, shape_str(v->shape), shape_str(expected));
  if (!dtype_is_float_convertible(v->dtype))
    fail("{}: tensor {} has dtype {}; the kernels read F32, F16 and BF16 weights only", file_of(name), name,
         dtype_name(v->dtype));
  if (expected.size() < 2) return TypedTensor(to_float(name));
  return TypedTensor::view(v->dtype, v->shape, v->data, map_.at(name).file);
}

}  // namespace mlar
