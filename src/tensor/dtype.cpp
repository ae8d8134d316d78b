#include "tensor/dtype.h"

#include <cctype>

#include "util/error.h"
#include "util/printable.h"

namespace mlar {
namespace {

struct DTypeInfo {
  DType type;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4},          {DType::F16, "F16", 2},        {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8},          {DType::I64, "I64", 8},        {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},          {DType::I8, "I8", 1},          {DType::U64, "U64", 8},
    {DType::U32, "U32", 4},          {DType::U16, "U16", 2},        {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},        {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeInfo& info(DType t) {
  for (const auto& i : kDTypes)
    if (i.type == t) return i;
  return kDTypes[0];
}

}  // namespace

const char* dtype_name(DType t) { return info(t).name; }
size_t dtype_size(DType t) { return info(t).size; }
bool dtype_is_float_convertible(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

bool parse_dtype(const std::string& s, DType* out) {
  for (const auto& i : kDTypes)
    if (s == i.name) {
      *out = i.type;
      return true;
    }
  return false;
}

DType parse_write_dtype(const std::string& s, const std::string& context) {
  std::string u;
  for (char c : s) u += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (u == "F32" || u == "FLOAT32" || u == "FP32") return DType::F32;
  if (u == "F16" || u == "FLOAT16" || u == "FP16") return DType::F16;
  if (u == "BF16" || u == "BFLOAT16") return DType::BF16;
  fail("{}: unsupported output dtype '{}' (expected F32, F16 or BF16)", context, printable(s));
}

std::string dtype_flag_name(DType t) {
  std::string s = dtype_name(t);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace mlar
