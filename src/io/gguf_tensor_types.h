// ggml tensor types as GGUF files name them: ids, names, block sizes.
#pragma once
#include <cstdint>
#include <string>

namespace mlar {

// The ids of the ggml types this project writes or names in messages (ggml.h values).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

// Storage of one type: `block_elems` values take `block_bytes` bytes.
struct GgmlTypeInfo {
  const char* name;
  int64_t block_elems;
  int64_t block_bytes;
};

// Null for an id this table does not know (such a tensor's size cannot be computed).
const GgmlTypeInfo* ggml_type_info(uint32_t id);

// "Q4_0" for a known id, "unknown" otherwise.
std::string ggml_type_name(uint32_t id);
inline std::string ggml_type_name(GgmlType t) { return ggml_type_name(static_cast<uint32_t>(t)); }

// The types read and written as float: F32, F16, BF16.
inline bool ggml_type_is_float(uint32_t id) { return id == 0 || id == 1 || id == 30; }

}  // namespace mlar
