#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <numeric>

#include "util/error.h"
#include "util/half.h"

namespace mlar {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// A bounds-checked cursor over the mapped file.
struct Cursor {
  const std::string& path;
  const uint8_t* data;
  uint64_t size;
  uint64_t pos = 0;

  uint64_t left() const { return size - pos; }

  void need(uint64_t n, std::string_view what) const {
    if (n > left())
      fail("{}: truncated file: {} at offset {} needs {} bytes, only {} remain (file is {} bytes)", path, what, pos,
           n, left(), size);
  }

  template <typename T>
  T get(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }

  std::string str(std::string_view what) {
    const uint64_t at = pos;
    const uint64_t n = get<uint64_t>(what);
    if (n > left())
      fail("{}: string length {} at offset {} ({}) runs past the end of the file ({} bytes; truncated?)", path, n, at,
           what, size);
    std::string s(reinterpret_cast<const char*>(data + pos), n);
    pos += n;
    return s;
  }
};

// Smallest encoding of one value of type t (bounds absurd array counts early).
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::Bool: return 1;
    case GgufValueType::U16:
    case GgufValueType::I16: return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32: return 4;
    case GgufValueType::String:  // u64 length
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64: return 8;
    case GgufValueType::Array: return 12;  // u32 type + u64 count
  }
  return 1;
}

GgufValueType value_type(Cursor& c, std::string_view what) {
  const uint64_t at = c.pos;
  const uint32_t t = c.get<uint32_t>(what);
  if (t >= kGgufValueTypeCount) fail("{}: {} has unknown value type {} (at offset {})", c.path, what, t, at);
  return static_cast<GgufValueType>(t);
}

GgufValue read_value(Cursor& c, GgufValueType t, const std::string& what, int depth) {
  switch (t) {
    case GgufValueType::U8: return c.get<uint8_t>(what);
    case GgufValueType::I8: return c.get<int8_t>(what);
    case GgufValueType::U16: return c.get<uint16_t>(what);
    case GgufValueType::I16: return c.get<int16_t>(what);
    case GgufValueType::U32: return c.get<uint32_t>(what);
    case GgufValueType::I32: return c.get<int32_t>(what);
    case GgufValueType::F32: return c.get<float>(what);
    case GgufValueType::U64: return c.get<uint64_t>(what);
    case GgufValueType::I64: return c.get<int64_t>(what);
    case GgufValueType::F64: return c.get<double>(what);
    case GgufValueType::Bool: {
      const uint64_t at = c.pos;
      const uint8_t b = c.get<uint8_t>(what);
      if (b > 1) fail("{}: {} has bool byte {} at offset {} (expected 0 or 1)", c.path, what, b, at);
      return b != 0;
    }
    case GgufValueType::String: return c.str(what);
    case GgufValueType::Array: {
      if (depth >= kMaxArrayDepth) fail("{}: {} nests arrays deeper than {}", c.path, what, kMaxArrayDepth);
      const GgufValueType elem = value_type(c, what);
      const uint64_t at = c.pos;
      const uint64_t n = c.get<uint64_t>(what);
      if (n > c.left() / min_value_bytes(elem))
        fail("{}: {} is an array of {} {} items at offset {}, more than the rest of the file ({} bytes) can hold "
             "(truncated or corrupt)",
             c.path, what, n, gguf_value_type_name(elem), at, c.left());
      GgufArray a{elem, {}};
      a.items.reserve(n);
      for (uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(c, elem, what, depth + 1));
      return GgufValue(std::move(a));
    }
  }
  fail("{}: {} has unknown value type {}", c.path, what, static_cast<uint32_t>(t));
}

}  // namespace

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

Shape GgufTensorInfo::shape() const { return Shape(ne.rbegin(), ne.rend()); }

GgufFile::GgufFile(const std::string& path) : file_(path), meta_(path) { parse(); }

void GgufFile::parse() {
  const std::string& p = file_.path();
  Cursor c{p, file_.data(), file_.size()};

  if (c.size < 4) fail("{}: not a GGUF file ({} bytes, too short for the header)", p, c.size);
  if (std::memcmp(c.data, "GGUF", 4) != 0)
    fail("{}: not a GGUF file (magic bytes {:02x} {:02x} {:02x} {:02x}, expected 47 47 55 46 \"GGUF\")", p, c.data[0],
         c.data[1], c.data[2], c.data[3]);
  c.pos = 4;
  version_ = c.get<uint32_t>("header (version)");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffffu) == 0 && __builtin_bswap32(version_) <= 3)
      fail("{}: big-endian GGUF (version {}) is not supported", p, __builtin_bswap32(version_));
    fail("{}: unsupported GGUF version {} (versions 2 and 3 are read)", p, version_);
  }
  const uint64_t n_tensors = c.get<uint64_t>("header (tensor count)");
  const uint64_t n_kv = c.get<uint64_t>("header (metadata count)");
  // A key is at least a u64 length, a u32 type and a 1-byte value; a tensor info at
  // least a u64 name length, u32 n_dims, u32 type and u64 offset.
  if (n_kv > c.left() / 13)
    fail("{}: metadata count {} is impossible for a file of {} bytes (truncated or corrupt)", p, n_kv, c.size);
  if (n_tensors > c.left() / 24)
    fail("{}: tensor count {} is impossible for a file of {} bytes (truncated or corrupt)", p, n_tensors, c.size);

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.str(fmt::format("key of metadata entry {}", i));
    const std::string what = fmt::format("metadata key {}", key);
    const GgufValueType t = value_type(c, what);
    meta_.add(std::move(key), read_value(c, t, what, 0));
  }

  if (const GgufValue* a = meta_.find("general.alignment")) {
    auto v = a->to_int();
    if (!v) fail("{}: metadata key general.alignment has type {}, expected uint32", p, a->type_name());
    if (*v <= 0 || *v > (1 << 30) || (*v & (*v - 1)) != 0)
      fail("{}: general.alignment {} is not a power of two", p, *v);
    alignment_ = static_cast<uint64_t>(*v);
  }

  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.str(fmt::format("name of tensor info {}", i));
    const std::string what = fmt::format("tensor info of {}", t.name);
    const uint32_t n_dims = c.get<uint32_t>(what);
    if (n_dims > kMaxDims) fail("{}: tensor {} has {} dimensions (at most {})", p, t.name, n_dims, kMaxDims);
    // `bound`, the product of the non-zero dimensions, fits in int64, so the
    // element count fits whatever order the dimensions are multiplied in (Shape
    // reverses them): [0, 2^62, 4] is refused, not left to overflow later.
    int64_t numel = 1, bound = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.get<uint64_t>(what);
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          __builtin_mul_overflow(bound, std::max<int64_t>(static_cast<int64_t>(ne), 1), &bound))
        fail("{}: tensor {} has an impossible dimension {}", p, t.name, ne);
      numel *= static_cast<int64_t>(ne);
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    t.type = c.get<uint32_t>(what);
    t.offset = c.get<uint64_t>(what);
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    if (!ti) fail("{}: tensor {} has unknown ggml type {}", p, t.name, t.type);
    const int64_t row = t.ne.empty() ? 1 : t.ne[0];
    if (row % ti->block_elems != 0)
      fail("{}: tensor {} of type {} has rows of {} values, not a multiple of its block size {}", p, t.name, ti->name,
           row, ti->block_elems);
    int64_t nbytes = 0;
    if (__builtin_mul_overflow(numel / ti->block_elems, ti->block_bytes, &nbytes))
      fail("{}: tensor {} is impossibly large ({} values)", p, t.name, numel);
    t.nbytes = static_cast<uint64_t>(nbytes);
    if (t.offset % alignment_ != 0)
      fail("{}: tensor {} data offset {} is not a multiple of the alignment {}", p, t.name, t.offset, alignment_);
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) fail("{}: duplicate tensor {}", p, t.name);
    tensors_.push_back(std::move(t));
  }

  data_offset_ = (c.pos + alignment_ - 1) / alignment_ * alignment_;
  if (tensors_.empty()) return;
  if (data_offset_ > c.size)
    fail("{}: truncated file: the tensor data section would start at offset {}, past the end ({} bytes)", p,
         data_offset_, c.size);
  const uint64_t avail = c.size - data_offset_;
  for (const auto& t : tensors_)
    if (t.offset > avail || t.nbytes > avail - t.offset)
      fail("{}: tensor {} data [{}, {}) lies outside the file ({} bytes; truncated?)", p, t.name,
           data_offset_ + t.offset, data_offset_ + t.offset + t.nbytes, c.size);

  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  const GgufTensorInfo* prev = nullptr;
  for (size_t i : order) {
    const GgufTensorInfo& t = tensors_[i];
    if (t.nbytes == 0) continue;
    if (prev && prev->offset + prev->nbytes > t.offset)
      fail("{}: tensors {} and {} overlap in the data section ([{}, {}) and [{}, {}))", p, prev->name, t.name,
           prev->offset, prev->offset + prev->nbytes, t.offset, t.offset + t.nbytes);
    prev = &t;
  }
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) fail("{}: missing tensor {}", path(), name);
  return *t;
}

std::span<const uint8_t> GgufFile::tensor_bytes(const GgufTensorInfo& t) const {
  return {file_.data() + data_offset_ + t.offset, static_cast<size_t>(t.nbytes)};
}

Tensor GgufFile::read_tensor(const GgufTensorInfo& t) const {
  if (!ggml_type_is_float(t.type))
    fail("{}: tensor {} has type {} ({}); only F32, F16, BF16 are supported", path(), t.name, ggml_type_name(t.type),
         t.type);
  Tensor out(t.shape());
  const uint8_t* src = tensor_bytes(t).data();
  const size_t n = out.data.size();
  if (n == 0) return out;
  float* dst = out.ptr();
  switch (static_cast<GgmlType>(t.type)) {
    case GgmlType::F32: std::memcpy(dst, src, n * sizeof(float)); break;
    case GgmlType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      break;
    case GgmlType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      break;
    default: break;
  }
  return out;
}

}  // namespace mlar
