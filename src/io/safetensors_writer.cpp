#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "util/atomic_output.h"
#include "util/error.h"
#include "util/half.h"
#include "util/stream_file.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";


void check_tensors(const std::vector<NamedTensor>& tensors, const std::string& where) {
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    if (t.name.empty()) fail("{}: empty tensor name", where);
    if (t.name == "__metadata__") fail("{}: '__metadata__' cannot name a tensor", where);
    if (!t.tensor) fail("{}: tensor '{}' has no data", where, t.name);
    if (t.tensor->numel() != shape_numel(t.tensor->shape))
      fail("{}: tensor '{}' holds {} values for shape {}", where, t.name, t.tensor->numel(),
           shape_str(t.tensor->shape));
    if (!seen.insert(t.name).second) fail("{}: duplicate tensor name '{}'", where, t.name);
  }
}

void check_write_dtype(DType d, const std::string& where) {
  if (!dtype_is_float_convertible(d)) fail("{}: cannot write dtype {} (F32, F16 or BF16 only)", where, dtype_name(d));
}

uint64_t tensor_bytes(const TypedTensor& t, DType d) { return static_cast<uint64_t>(t.numel()) * dtype_size(d); }

std::string header_for(const std::vector<NamedTensor>& tensors, DType dtype, const std::string& where) {
  nlohmann::ordered_json h;
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t pos = 0;
  for (const auto& t : tensors) {
    const uint64_t b = tensor_bytes(*t.tensor, dtype);
    h[t.name] = {{"dtype", dtype_name(dtype)}, {"shape", t.tensor->shape}, {"data_offsets", {pos, pos + b}}};
    pos += b;
  }
  std::string s;
  try {
    s = h.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: cannot encode the header (tensor names must be UTF-8): {}", where, e.what());
  }
  s.append((8 - s.size() % 8) % 8, ' ');
  return s;
}

void write_data(OutFd& out, const TypedTensor& t, DType dtype) {
  if (t.empty()) return;
  if (dtype == t.dtype) {
    out.write(t.data(), t.nbytes());
    return;
  }
  constexpr int64_t kChunk = 1 << 18;
  std::vector<uint8_t> buf(static_cast<size_t>(kChunk) * dtype_size(dtype));
  const auto* src = static_cast<const uint8_t*>(t.data());
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    convert_values(src + static_cast<size_t>(i) * dtype_size(t.dtype), t.dtype, buf.data(), dtype, m);
    out.write(buf.data(), static_cast<size_t>(m) * dtype_size(dtype));
  }
}

// Writes the whole file to af.tmp_path() (fsync'd); the caller commits.
void write_into(const AtomicFile& af, const std::vector<NamedTensor>& tensors, DType dtype) {
  const std::string where = af.final_path().string();
  const std::string header = header_for(tensors, dtype, where);
  OutFd out(af.tmp_path());  // checked writes (and the test fault hook, util/write_fault.h)
  const uint64_t n = header.size();
  out.write(&n, 8);
  out.write(header.data(), header.size());
  for (const auto& t : tensors) write_data(out, *t.tensor, dtype);
  out.sync_and_close();
}

}  // namespace

uint64_t safetensors_data_bytes(const std::vector<NamedTensor>& tensors, DType dtype) {
  uint64_t total = 0;
  for (const auto& t : tensors)
    if (t.tensor) total += tensor_bytes(*t.tensor, dtype);
  return total;
}

void write_safetensors(const fs::path& path, const std::vector<NamedTensor>& tensors, DType dtype, bool force) {
  check_write_dtype(dtype, path.string());
  check_tensors(tensors, path.string());
  AtomicFile af(path, force);
  write_into(af, tensors, dtype);
  af.commit();
}

std::vector<std::string> write_safetensors_model(const fs::path& dir, const std::vector<NamedTensor>& tensors,
                                                 DType dtype, uint64_t max_shard_bytes, bool force) {
  check_write_dtype(dtype, dir.string());
  check_tensors(tensors, dir.string());
  if (max_shard_bytes == 0) fail("{}: max_shard_bytes must be positive", dir.string());
  if (safetensors_data_bytes(tensors, dtype) <= max_shard_bytes) {
    write_safetensors(dir / kSingle, tensors, dtype, force);
    return {kSingle};
  }

  std::vector<std::vector<NamedTensor>> shards(1);
  uint64_t cur = 0;
  for (const auto& t : tensors) {
    const uint64_t b = tensor_bytes(*t.tensor, dtype);
    if (!shards.back().empty() && cur + b > max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(t);
    cur += b;
  }
  const size_t count = shards.size();
  if (count > 99999) fail("{}: {} shards is too many (raise max_shard_bytes)", dir.string(), count);

  std::vector<std::string> names;
  std::vector<std::unique_ptr<AtomicFile>> files;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < count; ++i) {
    names.push_back(fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, count));
    files.push_back(std::make_unique<AtomicFile>(dir / names.back(), force));
    write_into(*files.back(), shards[i], dtype);
    for (const auto& t : shards[i]) weight_map[t.name] = names.back();
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", safetensors_data_bytes(tensors, dtype)}}},
                                  {"weight_map", weight_map}};
  auto index_file = std::make_unique<AtomicFile>(dir / kIndex, force);
  write_text_file(index_file->tmp_path(), index.dump(2) + "\n");
  for (auto& f : files) f->commit();
  index_file->commit();
  names.push_back(kIndex);
  return names;
}

}  // namespace mlar
