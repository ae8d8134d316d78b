#include "io/gguf_writer.h"

#include "util/stream_file.h"


#include <bit>
#include <cerrno>
#include <cstring>

#include "util/atomic_output.h"
#include "util/error.h"
#include "util/half.h"

namespace mlar {

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

namespace {

// Buffered writes to a file descriptor; every failure names the final output path.
// Buffered, checked writes of the file (util/stream_file.h) with the byte count
// the alignment padding needs.
class Sink {
 public:
  explicit Sink(const std::filesystem::path& tmp) : out_(tmp) {}

  void bytes(const void* p, size_t n) { out_.write(p, n); }
  template <typename T>
  void pod(T v) {
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) { out_.zeros((alignment - out_.size() % alignment) % alignment); }
  uint64_t written() const { return out_.size(); }
  void finish() { out_.sync_and_close(); }

 private:
  OutFd out_;
};

void write_value(Sink& s, const GgufValue& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          s.str(x);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          s.pod<uint32_t>(static_cast<uint32_t>(x.elem));
          s.pod<uint64_t>(x.items.size());
          for (const auto& item : x.items) write_value(s, item);
        } else if constexpr (std::is_same_v<T, bool>) {
          s.pod<uint8_t>(x ? 1 : 0);
        } else {
          s.pod<T>(x);
        }
      },
      v.storage());
}

// Converts floats to `type` (F32/F16/BF16) into `out` (appending).
void encode(const float* src, size_t n, uint32_t type, std::vector<uint8_t>& out) {
  const size_t base = out.size();
  if (n == 0) return;
  if (type == static_cast<uint32_t>(GgmlType::F32)) {
    out.resize(base + n * 4);
    std::memcpy(out.data() + base, src, n * 4);
    return;
  }
  out.resize(base + n * 2);
  const bool f16 = type == static_cast<uint32_t>(GgmlType::F16);
  for (size_t i = 0; i < n; ++i) {
    uint16_t h = f16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
    std::memcpy(out.data() + base + 2 * i, &h, 2);
  }
}

}  // namespace

uint64_t GgufWriter::alignment() const {
  const GgufValue* a = meta_.find("general.alignment");
  if (!a) return 32;
  const uint32_t* v = a->get_if<uint32_t>();
  if (!v) fail("gguf writer: general.alignment has type {}, expected uint32", a->type_name());
  if (*v == 0 || (*v & (*v - 1)) != 0) fail("gguf writer: general.alignment {} is not a power of two", *v);
  return *v;
}

GgufWriter::Entry& GgufWriter::new_entry(std::string name, const Shape& shape, uint32_t type) {
  for (const auto& e : tensors_)
    if (e.name == name) fail("gguf writer: duplicate tensor {}", name);
  if (shape.size() > 4) fail("gguf writer: tensor {} has {} dimensions (at most 4)", name, shape.size());
  Entry& e = tensors_.emplace_back();
  e.name = std::move(name);
  e.ne.assign(shape.rbegin(), shape.rend());
  e.type = type;
  return e;
}

void GgufWriter::add_tensor(std::string name, const Tensor& t, GgmlType type) {
  if (!ggml_type_is_float(static_cast<uint32_t>(type)))
    fail("gguf writer: tensor {}: type {} cannot be written from floats (only F32, F16, BF16)", name,
         ggml_type_name(type));
  Entry& e = new_entry(std::move(name), t.shape, static_cast<uint32_t>(type));
  encode(t.ptr(), t.data.size(), e.type, e.bytes);
  e.nbytes = e.bytes.size();
}

void GgufWriter::add_tensor(std::string name, const TypedTensor& t, GgmlType type) {
  add_tensor(std::move(name), t.to_f32(), type);
}

void GgufWriter::add_tensor_ref(std::string name, const TypedTensor& t, GgmlType type) {
  if (!ggml_type_is_float(static_cast<uint32_t>(type)))
    fail("gguf writer: tensor {}: type {} cannot be written from floats (only F32, F16, BF16)", name,
         ggml_type_name(type));
  Entry& e = new_entry(std::move(name), t.shape, static_cast<uint32_t>(type));
  e.ref = &t;
  e.nbytes = static_cast<uint64_t>(t.numel()) * (type == GgmlType::F32 ? 4 : 2);
}

void GgufWriter::add_raw_tensor(std::string name, std::vector<int64_t> ne, uint32_t ggml_type,
                                std::vector<uint8_t> bytes) {
  const GgmlTypeInfo* ti = ggml_type_info(ggml_type);
  if (!ti) fail("gguf writer: tensor {} has unknown ggml type {}", name, ggml_type);
  int64_t numel = 1;
  for (int64_t d : ne) {
    if (d < 0) fail("gguf writer: tensor {} has a negative dimension", name);
    numel *= d;
  }
  const int64_t row = ne.empty() ? 1 : ne[0];
  if (row % ti->block_elems != 0)
    fail("gguf writer: tensor {} of type {} has rows of {} values, not a multiple of {}", name, ti->name, row,
         ti->block_elems);
  const uint64_t expected = static_cast<uint64_t>(numel / ti->block_elems * ti->block_bytes);
  if (bytes.size() != expected)
    fail("gguf writer: tensor {} of type {} needs {} bytes, got {}", name, ti->name, expected, bytes.size());
  Entry& e = new_entry(std::move(name), Shape(ne.rbegin(), ne.rend()), ggml_type);
  e.bytes = std::move(bytes);
  e.nbytes = expected;
}

void GgufWriter::write(const std::filesystem::path& path, bool force) const {
  const uint64_t align = alignment();
  AtomicFile out(path, force);
  const std::string name = path.string();
  Sink s(out.tmp_path());

  s.bytes("GGUF", 4);
  s.pod<uint32_t>(3);
  s.pod<uint64_t>(tensors_.size());
  s.pod<uint64_t>(meta_.size());
  for (const auto& [key, value] : meta_.entries()) {
    s.str(key);
    s.pod<uint32_t>(static_cast<uint32_t>(value.type()));
    write_value(s, value);
  }
  uint64_t offset = 0;
  for (const auto& e : tensors_) {
    s.str(e.name);
    s.pod<uint32_t>(static_cast<uint32_t>(e.ne.size()));
    for (int64_t d : e.ne) s.pod<uint64_t>(static_cast<uint64_t>(d));
    s.pod<uint32_t>(e.type);
    s.pod<uint64_t>(offset);
    offset += (e.nbytes + align - 1) / align * align;
  }
  s.pad_to(align);
  std::vector<uint8_t> chunk;
  for (const auto& e : tensors_) {
    if (e.ref) {
      const DType to = e.type == static_cast<uint32_t>(GgmlType::F32)   ? DType::F32
                       : e.type == static_cast<uint32_t>(GgmlType::F16) ? DType::F16
                                                                         : DType::BF16;
      if (static_cast<uint64_t>(e.ref->numel()) * dtype_size(to) != e.nbytes)
        fail("{}: tensor {} changed size between add_tensor_ref() and write()", name, e.name);
      constexpr int64_t kChunk = 1 << 18;  // values per conversion
      const int64_t n = e.ref->numel();
      const auto* src = static_cast<const uint8_t*>(e.ref->data());
      for (int64_t i = 0; i < n; i += kChunk) {
        const int64_t m = std::min(kChunk, n - i);
        chunk.resize(static_cast<size_t>(m) * dtype_size(to));
        convert_values(src + static_cast<size_t>(i) * dtype_size(e.ref->dtype), e.ref->dtype, chunk.data(), to, m);
        s.bytes(chunk.data(), chunk.size());
      }
    } else {
      s.bytes(e.bytes.data(), e.bytes.size());
    }
    s.pad_to(align);
  }
  s.finish();
  out.commit();
}

}  // namespace mlar
