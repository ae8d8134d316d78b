#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/printable.h"
#include "util/half.h"
#include "util/json_depth.h"

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace mlar {
namespace {

// Headers larger than this are refused (the reference implementation's limit).
constexpr uint64_t kMaxHeader = 100ull << 20;

// A name or JSON excerpt made safe for a one-line message.

// Parses the header JSON, refusing duplicate keys in any object (nlohmann would
// silently keep the last one).
nlohmann::json parse_header(const std::string& path, const char* begin, const char* end) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  auto cb = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) {
      keys.emplace_back();
    } else if (ev == E::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == E::key && !keys.empty() && duplicate.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second) duplicate = k;
    }
    return true;
  };
  check_json_depth(std::string_view(begin, static_cast<size_t>(end - begin)), path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(begin, end, cb);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON header: {}", path, printable(e.what(), 400));
  }
  if (!duplicate.empty()) fail("{}: duplicate key '{}' in the JSON header", path, printable(duplicate));
  return j;
}

bool as_u64(const nlohmann::json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  *out = j.get<uint64_t>();
  return true;
}

std::string json_excerpt(const nlohmann::json& j) { return printable(j.dump(), 80); }

}  // namespace

Tensor view_to_tensor(const TensorView& v, const std::string& file) {
  if (!dtype_is_float_convertible(v.dtype))
    fail("{}: tensor '{}' has dtype {}; only F32, F16 and BF16 are supported", file, printable(v.name),
         dtype_name(v.dtype));
  Tensor t(v.shape);
  const size_t n = t.data.size();
  float* dst = t.ptr();
  if (v.dtype == DType::F32) {
    if (n) std::memcpy(dst, v.data, n * sizeof(float));
  } else {
    const bool bf = v.dtype == DType::BF16;
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, v.data + 2 * i, 2);
      dst[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return t;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const uint64_t size = file_.size();
  if (size < 8) fail("{}: truncated: {} bytes, a safetensors file starts with an 8-byte header size", path, size);
  uint64_t n;
  std::memcpy(&n, file_.data(), 8);
  if (n > size - 8)
    fail("{}: header size {} exceeds the file ({} bytes after the size field; truncated or not safetensors)", path, n,
         size - 8);
  if (n > kMaxHeader) fail("{}: header size {} exceeds the limit of {} bytes", path, n, kMaxHeader);
  if (n < 2) fail("{}: header size {} is too small for a JSON object", path, n);
  const char* hb = reinterpret_cast<const char*>(file_.data() + 8);
  if (hb[0] != '{') fail("{}: header does not start with '{{' (not a safetensors file?)", path);
  nlohmann::json j = parse_header(path, hb, hb + n);
  if (!j.is_object()) fail("{}: JSON header is not an object", path);

  data_start_ = 8 + n;
  const uint64_t data_size = size - data_start_;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail("{}: __metadata__ is not an object", path);
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string())
          fail("{}: __metadata__ value for '{}' is not a string: {}", path, printable(m.key()),
               json_excerpt(m.value()));
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string pn = printable(name);
    if (!e.is_object()) fail("{}: entry for tensor '{}' is not an object", path, pn);
    TensorView v;
    v.name = name;
    auto dt = e.find("dtype");
    if (dt == e.end() || !dt->is_string()) fail("{}: tensor '{}' has no dtype string", path, pn);
    if (!parse_dtype(dt->get<std::string>(), &v.dtype))
      fail("{}: tensor '{}' has unknown dtype '{}' (supported: F32, F16, BF16)", path, pn,
           printable(dt->get<std::string>()));
    auto sh = e.find("shape");
    if (sh == e.end() || !sh->is_array()) fail("{}: tensor '{}' has no shape array", path, pn);
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      uint64_t x;
      if (!as_u64(d, &x) || x > static_cast<uint64_t>(INT64_MAX))
        fail("{}: tensor '{}' has an invalid shape {} (dimensions must be non-negative integers)", path, pn,
             json_excerpt(*sh));
      v.shape.push_back(static_cast<int64_t>(x));
      overflow = overflow || __builtin_mul_overflow(numel, x, &numel);
    }
    auto off = e.find("data_offsets");
    if (off == e.end() || !off->is_array() || off->size() != 2 || !as_u64((*off)[0], &v.begin) ||
        !as_u64((*off)[1], &v.end))
      fail("{}: tensor '{}' needs data_offsets [begin, end] of two non-negative integers, got {}", path, pn,
           off == e.end() ? std::string("nothing") : json_excerpt(*off));
    if (v.begin > v.end) fail("{}: tensor '{}' data_offsets [{}, {}) have begin after end", path, pn, v.begin, v.end);
    if (v.end > data_size)
      fail("{}: tensor '{}' data_offsets [{}, {}) lie outside the data region of {} bytes", path, pn, v.begin,
           v.end, data_size);
    uint64_t bytes;
    overflow = overflow || __builtin_mul_overflow(numel, dtype_size(v.dtype), &bytes);
    if (overflow || bytes != v.end - v.begin)
      fail("{}: tensor '{}' data_offsets [{}, {}) hold {} bytes, shape {} of {} needs {}", path, pn, v.begin, v.end,
           v.end - v.begin, shape_str(v.shape), dtype_name(v.dtype),
           overflow ? std::string("more than 2^64") : std::to_string(bytes));
    v.data = file_.data() + data_start_ + v.begin;
    tensors_.push_back(std::move(v));
  }

  // The data region must be covered exactly: contiguous from 0 to the end of the file.
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorView& a, const TensorView& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& v = tensors_[i];
    if (v.begin < pos)
      fail("{}: tensor '{}' [{}, {}) overlaps tensor '{}' [{}, {})", path, printable(v.name), v.begin, v.end,
           printable(tensors_[i - 1].name), tensors_[i - 1].begin, tensors_[i - 1].end);
    if (v.begin > pos)
      fail("{}: gap of {} bytes in the data region before tensor '{}' at offset {}", path, v.begin - pos,
           printable(v.name), v.begin);
    pos = v.end;
  }
  if (pos != data_size)
    fail("{}: {} bytes after the last tensor are not covered by any tensor (data region {} bytes)", path,
         data_size - pos, data_size);
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  const TensorView* v = find(name);
  if (!v) fail("{}: no tensor '{}'", path(), printable(name));
  return *v;
}

}  // namespace mlar
