#include "io/safetensors_stream.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/utf8.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

// Marks the writer broken unless dismissed: an exception part way through a tensor
// leaves a shard that must not be continued.
struct BreakGuard {
  bool* flag;
  bool armed = true;
  ~BreakGuard() {
    if (armed) *flag = true;
  }
};

void write_u64(OutFd& f, uint64_t v) { f.write(&v, 8); }

}  // namespace

SafetensorsShardWriter::SafetensorsShardWriter(fs::path dir, uint64_t max_shard_bytes, bool force)
    : dir_(std::move(dir)), max_shard_bytes_(max_shard_bytes), force_(force) {
  if (!fs::is_directory(dir_)) fail("{}: output directory does not exist", dir_.string());
  if (max_shard_bytes_ == 0) fail("{}: max_shard_bytes must be positive", dir_.string());
}

SafetensorsShardWriter::~SafetensorsShardWriter() {
  if (done_) return;
  open_.reset();  // closes and removes the data file
  shards_.clear();  // removes the temporary shard files
  std::error_code ec;
  for (const auto& p : renamed_) fs::remove(p, ec);
}

void SafetensorsShardWriter::check_usable() const {
  if (done_) fail("{}: safetensors writer used after finish()", dir_.string());
  if (broken_) fail("{}: safetensors writer used after an earlier error", dir_.string());
}

SafetensorsShardWriter::Open& SafetensorsShardWriter::begin_tensor(const std::string& name, DType disk,
                                                                   const Shape& shape, uint64_t* bytes) {
  check_usable();
  const std::string where = dir_.string();
  if (name.empty()) fail("{}: empty tensor name", where);
  if (name == "__metadata__") fail("{}: '__metadata__' cannot name a tensor", where);
  if (utf8_invalid_offset(name) != std::string::npos) fail("{}: tensor name is not UTF-8", where);
  if (names_.count(name)) fail("{}: duplicate tensor name '{}'", where, name);
  if (!dtype_is_float_convertible(disk))
    fail("{}: cannot write dtype {} (F32, F16 or BF16 only)", where, dtype_name(disk));
  for (int64_t d : shape)
    if (d < 0) fail("{}: tensor '{}' has a negative dimension in {}", where, name, shape_str(shape));
  *bytes = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(disk);

  if (open_ && !open_->entries.empty() && open_->bytes + *bytes > max_shard_bytes_) close_shard();
  if (!open_) {
    auto o = std::make_unique<Open>();
    const size_t index = shards_.size() + 1;
    if (index > 99999) fail("{}: more than 99999 shards (raise max_shard_bytes)", where);
    o->data_path = RemoveOnExit(dir_ / fmt::format(".shard-{:05d}.data.tmp", index));
    o->data = std::make_unique<OutFd>(o->data_path.path());
    open_ = std::move(o);
  }
  return *open_;
}

void SafetensorsShardWriter::end_tensor(Open& s, const std::string& name, DType disk, const Shape& shape,
                                        uint64_t bytes) {
  if (s.data->size() != s.bytes + bytes)
    fail("{}: tensor '{}' wrote {} bytes, expected {}", dir_.string(), name, s.data->size() - s.bytes, bytes);
  s.entries.push_back({name, disk, shape, s.bytes, s.bytes + bytes});
  s.bytes += bytes;
  names_.insert(name);
  total_bytes_ += bytes;
}

void SafetensorsShardWriter::add(const std::string& name, DType disk, const Shape& shape, const void* src,
                                 DType src_dtype) {
  uint64_t bytes = 0;
  Open& s = begin_tensor(name, disk, shape, &bytes);
  if (!dtype_is_float_convertible(src_dtype))
    fail("{}: tensor '{}': source dtype {} is not F32, F16 or BF16", dir_.string(), name, dtype_name(src_dtype));
  if (bytes > 0 && !src) fail("{}: tensor '{}' has no data", dir_.string(), name);
  BreakGuard guard{&broken_};
  write_elements(*s.data, src, src_dtype, disk, static_cast<uint64_t>(shape_numel(shape)));
  end_tensor(s, name, disk, shape, bytes);
  guard.armed = false;
}

void SafetensorsShardWriter::add(const std::string& name, DType disk, const Shape& shape, const ChunkFill& fill) {
  uint64_t bytes = 0;
  Open& s = begin_tensor(name, disk, shape, &bytes);
  BreakGuard guard{&broken_};
  write_chunks(*s.data, disk, static_cast<uint64_t>(shape_numel(shape)), fill);
  end_tensor(s, name, disk, shape, bytes);
  guard.armed = false;
}

void SafetensorsShardWriter::close_shard() {
  BreakGuard guard{&broken_};
  std::unique_ptr<Open> o = std::move(open_);
  const size_t index = shards_.size() + 1;
  const std::string where = dir_.string();

  // The header exactly as write_safetensors writes it.
  nlohmann::ordered_json h;
  h["__metadata__"] = {{"format", "pt"}};
  for (const auto& e : o->entries)
    h[e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
  std::string header;
  try {
    header = h.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: cannot encode a shard header: {}", where, e.what());
  }
  header.append((8 - header.size() % 8) % 8, ' ');

  Shard shard;
  shard.tmp = RemoveOnExit(dir_ / fmt::format(".shard-{:05d}.safetensors.tmp", index));
  OutFd out(shard.tmp.path());
  write_u64(out, header.size());
  out.write(header.data(), header.size());
  o->data->flush();
  copy_file_data(*o->data, 0, o->bytes, out, /*punch_source=*/true);
  out.sync_and_close();
  for (auto& e : o->entries) shard.names.push_back(std::move(e.name));
  o.reset();  // the data file goes
  shards_.push_back(std::move(shard));
  guard.armed = false;
}

std::vector<std::string> SafetensorsShardWriter::finish() {
  check_usable();
  BreakGuard guard{&broken_};
  const std::string where = dir_.string();
  if (open_ || shards_.empty()) {
    if (!open_) {  // no tensors at all: one file with an empty header, as write_safetensors does
      open_ = std::make_unique<Open>();
      open_->data_path = RemoveOnExit(dir_ / ".shard-00001.data.tmp");
      open_->data = std::make_unique<OutFd>(open_->data_path.path());
    }
    close_shard();
  }
  const size_t count = shards_.size();
  std::vector<std::string> names;
  for (size_t i = 0; i < count; ++i)
    names.push_back(count == 1 ? std::string(kSingle) : fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, count));
  std::error_code ec;
  for (const auto& n : names)
    if (!force_ && fs::exists(dir_ / n, ec)) fail("{}: output already exists (use --force to replace it)", (dir_ / n).string());
  if (count > 1 && !force_ && fs::exists(dir_ / kIndex, ec))
    fail("{}: output already exists (use --force to replace it)", (dir_ / kIndex).string());

  for (size_t i = 0; i < count; ++i) {
    const fs::path final_path = dir_ / names[i];
    fs::rename(shards_[i].tmp.path(), final_path, ec);
    if (ec) fail("{}: cannot rename {} into place: {}", final_path.string(), shards_[i].tmp.path().string(), ec.message());
    shards_[i].tmp.keep();
    renamed_.push_back(final_path);
  }
  if (count > 1) {
    nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
    for (size_t i = 0; i < count; ++i)
      for (const auto& n : shards_[i].names) weight_map[n] = names[i];
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total_bytes_}}}, {"weight_map", weight_map}};
    const std::string text = index.dump(2) + "\n";
    RemoveOnExit tmp(dir_ / ".index.json.tmp");
    OutFd out(tmp.path());
    out.write(text.data(), text.size());
    out.sync_and_close();
    const fs::path final_path = dir_ / kIndex;
    fs::rename(tmp.path(), final_path, ec);
    if (ec) fail("{}: cannot rename {} into place: {}", final_path.string(), tmp.path().string(), ec.message());
    tmp.keep();
    renamed_.push_back(final_path);
    names.push_back(kIndex);
  }
  sync_directory(dir_);
  shards_.clear();
  done_ = true;
  guard.armed = false;
  return names;
}

}  // namespace mlar
