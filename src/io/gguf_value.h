// GGUF metadata: typed values (scalars, strings, arrays, nested arrays) and the
// ordered key -> value table with getters that fail naming the file and the key.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mlar {

// gguf_type ids, as stored in the file.
enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
constexpr uint32_t kGgufValueTypeCount = 13;

// "uint32", "float32", "string", "array", ...; "unknown" outside the enum.
const char* gguf_value_type_name(GgufValueType t);
bool gguf_value_type_is_integer(GgufValueType t);

class GgufValue;

// An array value: its element type and items (every item has that type; items of
// an array of arrays may differ in their own element types).
struct GgufArray {
  GgufValueType elem = GgufValueType::U8;
  std::vector<GgufValue> items;
  friend bool operator==(const GgufArray& a, const GgufArray& b);
};

class GgufValue {
 public:
  // Alternatives in gguf_type order, so index() == the type id.
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                               GgufArray, uint64_t, int64_t, double>;

  GgufValue() = default;  // uint8 0
  GgufValue(uint8_t v) : v_(v) {}
  GgufValue(int8_t v) : v_(v) {}
  GgufValue(uint16_t v) : v_(v) {}
  GgufValue(int16_t v) : v_(v) {}
  GgufValue(uint32_t v) : v_(v) {}
  GgufValue(int32_t v) : v_(v) {}
  GgufValue(float v) : v_(v) {}
  GgufValue(bool v) : v_(v) {}
  GgufValue(std::string v) : v_(std::move(v)) {}
  GgufValue(const char* v) : v_(std::string(v)) {}
  GgufValue(std::string_view v) : v_(std::string(v)) {}
  GgufValue(uint64_t v) : v_(v) {}
  GgufValue(int64_t v) : v_(v) {}
  GgufValue(double v) : v_(v) {}
  // Throws mlar::Error if an item's type differs from `elem`.
  GgufValue(GgufArray a);

  static GgufValue array(GgufValueType elem, std::vector<GgufValue> items) {
    return GgufValue(GgufArray{elem, std::move(items)});
  }
  static GgufValue strings(const std::vector<std::string>& v);
  static GgufValue floats(const std::vector<float>& v);
  static GgufValue ints(const std::vector<int32_t>& v);

  GgufValueType type() const { return static_cast<GgufValueType>(v_.index()); }
  // "uint32", "string", "array of string", "array of array of float32" ...
  std::string type_name() const;
  const Storage& storage() const { return v_; }
  template <typename T>
  const T* get_if() const {
    return std::get_if<T>(&v_);
  }
  const GgufArray* array() const { return std::get_if<GgufArray>(&v_); }

  // Value of any integer type, if it fits in int64 (nullopt otherwise).
  std::optional<int64_t> to_int() const;
  // Value of a float or integer type.
  std::optional<double> to_double() const;

  // Compact JSON-like text: strings quoted and escaped, long arrays cut after
  // `max_items` items with the total count.
  std::string to_string(size_t max_items = 16) const;

  friend bool operator==(const GgufValue& a, const GgufValue& b) { return a.v_ == b.v_; }

 private:
  Storage v_;
};

// The metadata of one file, in file (or insertion) order. `source` names the file
// in error messages.
class GgufMetadata {
 public:
  explicit GgufMetadata(std::string source = "gguf") : source_(std::move(source)) {}

  const std::string& source() const { return source_; }
  // Adds `key`, or replaces its value where it already exists (keeping its place).
  void set(std::string key, GgufValue v);
  // Adds `key`; throws "<source>: duplicate metadata key K" if it exists.
  void add(std::string key, GgufValue v);

  const GgufValue* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  // Throws "<source>: metadata key K missing".
  const GgufValue& at(std::string_view key) const;
  size_t size() const { return entries_.size(); }
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return entries_; }

  // Typed getters. Missing key: "<source>: metadata key K missing"; wrong type:
  // "<source>: metadata key K has type X, expected Y". The overloads with a default
  // return it when the key is absent (a present key of the wrong type still fails).
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, const std::string& def) const;
  int64_t get_int(std::string_view key) const;  // any integer type fitting in int64
  int64_t get_int(std::string_view key, int64_t def) const;
  double get_float(std::string_view key) const;  // float32/float64 (integers accepted)
  double get_float(std::string_view key, double def) const;
  bool get_bool(std::string_view key) const;
  bool get_bool(std::string_view key, bool def) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;  // float32/float64 items
  std::vector<int64_t> get_int_array(std::string_view key) const;  // integer items

 private:
  [[noreturn]] void wrong_type(std::string_view key, const GgufValue& v, const char* expected) const;
  const GgufArray& array_at(std::string_view key, const char* expected) const;

  std::string source_;
  std::vector<std::pair<std::string, GgufValue>> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace mlar
