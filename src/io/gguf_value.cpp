#include "io/gguf_value.h"

#include <fmt/format.h>

#include <limits>

#include "util/error.h"

namespace mlar {

const char* gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: return "uint8";
    case GgufValueType::I8: return "int8";
    case GgufValueType::U16: return "uint16";
    case GgufValueType::I16: return "int16";
    case GgufValueType::U32: return "uint32";
    case GgufValueType::I32: return "int32";
    case GgufValueType::F32: return "float32";
    case GgufValueType::Bool: return "bool";
    case GgufValueType::String: return "string";
    case GgufValueType::Array: return "array";
    case GgufValueType::U64: return "uint64";
    case GgufValueType::I64: return "int64";
    case GgufValueType::F64: return "float64";
  }
  return "unknown";
}

bool gguf_value_type_is_integer(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::U16:
    case GgufValueType::I16:
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::U64:
    case GgufValueType::I64: return true;
    default: return false;
  }
}

bool operator==(const GgufArray& a, const GgufArray& b) { return a.elem == b.elem && a.items == b.items; }

GgufValue::GgufValue(GgufArray a) {
  for (size_t i = 0; i < a.items.size(); ++i)
    if (a.items[i].type() != a.elem)
      fail("gguf: array of {} has item {} of type {}", gguf_value_type_name(a.elem), i, a.items[i].type_name());
  v_ = std::move(a);
}

GgufValue GgufValue::strings(const std::vector<std::string>& v) {
  GgufArray a{GgufValueType::String, {}};
  a.items.reserve(v.size());
  for (const auto& s : v) a.items.emplace_back(s);
  return GgufValue(std::move(a));
}

GgufValue GgufValue::floats(const std::vector<float>& v) {
  GgufArray a{GgufValueType::F32, {}};
  a.items.reserve(v.size());
  for (float x : v) a.items.emplace_back(x);
  return GgufValue(std::move(a));
}

GgufValue GgufValue::ints(const std::vector<int32_t>& v) {
  GgufArray a{GgufValueType::I32, {}};
  a.items.reserve(v.size());
  for (int32_t x : v) a.items.emplace_back(x);
  return GgufValue(std::move(a));
}

std::string GgufValue::type_name() const {
  const GgufArray* a = array();
  if (!a) return gguf_value_type_name(type());
  // An empty array of arrays cannot say more than its element type.
  if (a->elem == GgufValueType::Array && !a->items.empty()) return "array of " + a->items.front().type_name();
  return std::string("array of ") + gguf_value_type_name(a->elem);
}

std::optional<int64_t> GgufValue::to_int() const {
  return std::visit(
      [](const auto& x) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, uint64_t>) {
          if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
          return static_cast<int64_t>(x);
        } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          return static_cast<int64_t>(x);
        } else {
          return std::nullopt;
        }
      },
      v_);
}

std::optional<double> GgufValue::to_double() const {
  if (auto i = get_if<float>()) return *i;
  if (auto d = get_if<double>()) return *d;
  if (type() == GgufValueType::U64) return static_cast<double>(std::get<uint64_t>(v_));
  if (auto i = to_int()) return static_cast<double>(*i);
  return std::nullopt;
}

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

std::string GgufValue::to_string(size_t max_items) const {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return quoted(x);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          std::string out = "[";
          size_t n = std::min(max_items, x.items.size());
          for (size_t i = 0; i < n; ++i) out += (i ? ", " : "") + x.items[i].to_string(max_items);
          if (n < x.items.size()) out += fmt::format("{}... ({} items)", n ? ", " : "", x.items.size());
          return out + "]";
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          return fmt::format("{}", static_cast<int>(x));
        } else {
          return fmt::format("{}", x);
        }
      },
      v_);
}

void GgufMetadata::set(std::string key, GgufValue v) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    entries_[it->second].second = std::move(v);
    return;
  }
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(v));
}

void GgufMetadata::add(std::string key, GgufValue v) {
  if (index_.count(key)) fail("{}: duplicate metadata key {}", source_, key);
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(v));
}

const GgufValue* GgufMetadata::find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const GgufValue& GgufMetadata::at(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: metadata key {} missing", source_, key);
  return *v;
}

void GgufMetadata::wrong_type(std::string_view key, const GgufValue& v, const char* expected) const {
  fail("{}: metadata key {} has type {}, expected {}", source_, key, v.type_name(), expected);
}

std::string GgufMetadata::get_string(std::string_view key) const {
  const GgufValue& v = at(key);
  if (auto s = v.get_if<std::string>()) return *s;
  wrong_type(key, v, "string");
}

std::string GgufMetadata::get_string(std::string_view key, const std::string& def) const {
  return contains(key) ? get_string(key) : def;
}

int64_t GgufMetadata::get_int(std::string_view key) const {
  const GgufValue& v = at(key);
  if (auto i = v.to_int()) return *i;
  if (v.type() == GgufValueType::U64)
    fail("{}: metadata key {} value {} does not fit in int64", source_, key, *v.get_if<uint64_t>());
  wrong_type(key, v, "integer");
}

int64_t GgufMetadata::get_int(std::string_view key, int64_t def) const { return contains(key) ? get_int(key) : def; }

double GgufMetadata::get_float(std::string_view key) const {
  const GgufValue& v = at(key);
  if (auto d = v.to_double()) return *d;
  wrong_type(key, v, "float");
}

double GgufMetadata::get_float(std::string_view key, double def) const { return contains(key) ? get_float(key) : def; }

bool GgufMetadata::get_bool(std::string_view key) const {
  const GgufValue& v = at(key);
  if (auto b = v.get_if<bool>()) return *b;
  wrong_type(key, v, "bool");
}

bool GgufMetadata::get_bool(std::string_view key, bool def) const { return contains(key) ? get_bool(key) : def; }

const GgufArray& GgufMetadata::array_at(std::string_view key, const char* expected) const {
  const GgufValue& v = at(key);
  const GgufArray* a = v.array();
  if (!a) wrong_type(key, v, expected);
  return *a;
}

std::vector<std::string> GgufMetadata::get_string_array(std::string_view key) const {
  const GgufArray& a = array_at(key, "array of string");
  if (a.elem != GgufValueType::String) wrong_type(key, at(key), "array of string");
  std::vector<std::string> out;
  out.reserve(a.items.size());
  for (const auto& item : a.items) out.push_back(*item.get_if<std::string>());
  return out;
}

std::vector<float> GgufMetadata::get_float_array(std::string_view key) const {
  const GgufArray& a = array_at(key, "array of float32");
  if (a.elem != GgufValueType::F32 && a.elem != GgufValueType::F64) wrong_type(key, at(key), "array of float32");
  std::vector<float> out;
  out.reserve(a.items.size());
  for (const auto& item : a.items) out.push_back(static_cast<float>(*item.to_double()));
  return out;
}

std::vector<int64_t> GgufMetadata::get_int_array(std::string_view key) const {
  const GgufArray& a = array_at(key, "array of integers");
  if (!gguf_value_type_is_integer(a.elem)) wrong_type(key, at(key), "array of integers");
  std::vector<int64_t> out;
  out.reserve(a.items.size());
  for (size_t i = 0; i < a.items.size(); ++i) {
    auto x = a.items[i].to_int();
    if (!x) fail("{}: metadata key {} item {} does not fit in int64", source_, key, i);
    out.push_back(*x);
  }
  return out;
}

}  // namespace mlar
