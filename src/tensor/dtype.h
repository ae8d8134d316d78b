// Element types of stored tensors (the safetensors set, which GGUF's float types map
// onto). Compute is float32; weights and KV caches may be kept as F16 or BF16 and are
// read by the kernels in ops/ directly (f32 accumulation).
#pragma once
#include <cstddef>
#include <string>

namespace mlar {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

const char* dtype_name(DType t);  // "F32", "BF16", ...
size_t dtype_size(DType t);       // bytes per element
// F32, F16, BF16: the types that convert to float32 and that the kernels read.
bool dtype_is_float_convertible(DType t);
// Parses a safetensors dtype string ("F16"); false for anything else.
bool parse_dtype(const std::string& s, DType* out);
// Parses a storage dtype a user names: F32 | F16 | BF16 (case-insensitive; also
// float32/float16/bfloat16/fp32/fp16). Throws mlar::Error "<context>: ..." otherwise.
DType parse_write_dtype(const std::string& s, const std::string& context);
// The lower-case name users type ("f32", "bf16", "f16").
std::string dtype_flag_name(DType t);

}  // namespace mlar
