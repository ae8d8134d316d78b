#include "io/gguf_stream.h"

#include <algorithm>
#include <bit>
#include <type_traits>
#include <variant>

#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

namespace {

struct BreakGuard {
  bool* flag;
  bool armed = true;
  ~BreakGuard() {
    if (armed) *flag = true;
  }
};

template <typename T>
void pod(OutFd& f, T v) {
  f.write(&v, sizeof v);
}

void str(OutFd& f, const std::string& s) {
  pod<uint64_t>(f, s.size());
  f.write(s.data(), s.size());
}

void write_value(OutFd& f, const GgufValue& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          str(f, x);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          pod<uint32_t>(f, static_cast<uint32_t>(x.elem));
          pod<uint64_t>(f, x.items.size());
          for (const auto& item : x.items) write_value(f, item);
        } else if constexpr (std::is_same_v<T, bool>) {
          pod<uint8_t>(f, x ? 1 : 0);
        } else {
          pod<T>(f, x);
        }
      },
      v.storage());
}

uint64_t pad_of(uint64_t size, uint64_t align) { return (align - size % align) % align; }

DType float_dtype(GgmlType t, const std::string& where, const std::string& name) {
  switch (t) {
    case GgmlType::F32: return DType::F32;
    case GgmlType::F16: return DType::F16;
    case GgmlType::BF16: return DType::BF16;
    default:
      fail("{}: tensor {}: type {} cannot be written from floats (only F32, F16, BF16)", where, name,
           ggml_type_name(t));
  }
}

}  // namespace

GgufStreamWriter::GgufStreamWriter(fs::path path, GgufMetadata meta, bool force)
    : where_(path.string()), meta_(std::move(meta)), out_(path, force) {
  if (const GgufValue* a = meta_.find("general.alignment")) {
    const uint32_t* v = a->get_if<uint32_t>();
    if (!v) fail("{}: general.alignment has type {}, expected uint32", where_, a->type_name());
    if (*v == 0 || (*v & (*v - 1)) != 0) fail("{}: general.alignment {} is not a power of two", where_, *v);
    align_ = *v;
  }
  data_path_ = RemoveOnExit(fs::path(out_.tmp_path().string() + ".data"));
  data_ = std::make_unique<OutFd>(data_path_.path());
}

GgufStreamWriter::~GgufStreamWriter() { data_.reset(); }  // data_path_ then removes the data file

void GgufStreamWriter::check_usable() const {
  if (done_) fail("{}: gguf writer used after finish()", where_);
  if (broken_) fail("{}: gguf writer used after an earlier error", where_);
}

uint64_t GgufStreamWriter::begin_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t type) {
  check_usable();
  if (names_.count(name)) fail("{}: duplicate tensor {}", where_, name);
  if (ne.size() > 4) fail("{}: tensor {} has {} dimensions (at most 4)", where_, name, ne.size());
  const GgmlTypeInfo* ti = ggml_type_info(type);
  if (!ti) fail("{}: tensor {} has unknown ggml type {}", where_, name, type);
  int64_t numel = 1;
  for (int64_t d : ne) {
    if (d < 0) fail("{}: tensor {} has a negative dimension", where_, name);
    numel *= d;
  }
  const int64_t row = ne.empty() ? 1 : ne[0];
  if (row % ti->block_elems != 0)
    fail("{}: tensor {} of type {} has rows of {} values, not a multiple of {}", where_, name, ti->name, row,
         ti->block_elems);
  return static_cast<uint64_t>(numel / ti->block_elems * ti->block_bytes);
}

void GgufStreamWriter::end_tensor(uint64_t start, uint64_t nbytes, const std::string& name) {
  if (data_->size() != start + nbytes)
    fail("{}: tensor {} wrote {} bytes, expected {}", where_, name, data_->size() - start, nbytes);
  data_->zeros(pad_of(data_->size(), align_));
  names_.insert(name);
}

void GgufStreamWriter::add(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                           const void* src, DType src_dtype) {
  const DType disk = float_dtype(type, where_, name);
  const uint64_t nbytes = begin_tensor(name, ne, static_cast<uint32_t>(type));
  if (!dtype_is_float_convertible(src_dtype))
    fail("{}: tensor {}: source dtype {} is not F32, F16 or BF16", where_, name, dtype_name(src_dtype));
  if (nbytes > 0 && !src) fail("{}: tensor {} has no data", where_, name);
  BreakGuard guard{&broken_};
  const uint64_t start = data_->size();
  infos_.push_back({name, ne, static_cast<uint32_t>(type), start});
  write_elements(*data_, src, src_dtype, disk, nbytes / dtype_size(disk));
  end_tensor(start, nbytes, name);
  guard.armed = false;
}

void GgufStreamWriter::add(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                           const ChunkFill& fill) {
  const DType disk = float_dtype(type, where_, name);
  const uint64_t nbytes = begin_tensor(name, ne, static_cast<uint32_t>(type));
  BreakGuard guard{&broken_};
  const uint64_t start = data_->size();
  infos_.push_back({name, ne, static_cast<uint32_t>(type), start});
  write_chunks(*data_, disk, nbytes / dtype_size(disk), fill);
  end_tensor(start, nbytes, name);
  guard.armed = false;
}

void GgufStreamWriter::add_tensor(const std::string& name, const Tensor& t, GgmlType type) {
  add(name, type, std::vector<int64_t>(t.shape.rbegin(), t.shape.rend()), t.ptr(), DType::F32);
}

void GgufStreamWriter::add_raw(const std::string& name, const std::vector<int64_t>& ne, uint32_t ggml_type,
                               const void* bytes, uint64_t nbytes) {
  const uint64_t expected = begin_tensor(name, ne, ggml_type);
  const GgmlTypeInfo* ti = ggml_type_info(ggml_type);
  if (nbytes != expected)
    fail("{}: tensor {} of type {} needs {} bytes, got {}", where_, name, ti->name, expected, nbytes);
  if (nbytes > 0 && !bytes) fail("{}: tensor {} has no data", where_, name);
  BreakGuard guard{&broken_};
  const uint64_t start = data_->size();
  infos_.push_back({name, ne, ggml_type, start});
  const auto* p = static_cast<const uint8_t*>(bytes);
  constexpr uint64_t kMax = 1ull << 30;
  for (uint64_t off = 0; off < nbytes; off += kMax) data_->write(p + off, static_cast<size_t>(std::min(kMax, nbytes - off)));
  end_tensor(start, nbytes, name);
  guard.armed = false;
}

void GgufStreamWriter::finish() {
  check_usable();
  BreakGuard guard{&broken_};
  {
    OutFd f(out_.tmp_path());
    f.write("GGUF", 4);
    pod<uint32_t>(f, 3);
    pod<uint64_t>(f, infos_.size());
    pod<uint64_t>(f, meta_.size());
    for (const auto& [key, value] : meta_.entries()) {
      str(f, key);
      pod<uint32_t>(f, static_cast<uint32_t>(value.type()));
      write_value(f, value);
    }
    for (const auto& t : infos_) {
      str(f, t.name);
      pod<uint32_t>(f, static_cast<uint32_t>(t.ne.size()));
      for (int64_t d : t.ne) pod<uint64_t>(f, static_cast<uint64_t>(d));
      pod<uint32_t>(f, t.type);
      pod<uint64_t>(f, t.offset);
    }
    f.zeros(pad_of(f.size(), align_));
    copy_file_data(*data_, 0, data_->size(), f, /*punch_source=*/true);
    f.sync_and_close();
  }
  data_.reset();
  data_path_.remove_now();
  out_.commit();
  sync_directory(out_.final_path().has_parent_path() ? out_.final_path().parent_path() : fs::path("."));
  done_ = true;
  guard.armed = false;
}

}  // namespace mlar
