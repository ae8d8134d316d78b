#include "tensor/typed_tensor.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"
#include "util/half.h"

namespace mlar {
namespace {

void check_float(DType t, const char* what) {
  if (!dtype_is_float_convertible(t)) fail("{}: dtype {} is not F32, F16 or BF16", what, dtype_name(t));
}

// n values of `t` at `src` -> float32.
void widen(const void* src, DType t, float* dst, int64_t n) {
  if (t == DType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  const auto* h = static_cast<const uint16_t*>(src);
  if (t == DType::BF16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h[i]);
  }
}

void narrow(const float* src, DType t, void* dst, int64_t n) {
  if (t == DType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  auto* h = static_cast<uint16_t*>(dst);
  if (t == DType::BF16) {
    for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(src[i]);
  }
}

size_t floats_for(size_t bytes) { return (bytes + 3) / 4; }

// Bytes of numel(shape) values of `t` (before the storage exists, when numel() is 0).
size_t bytes_of(const Shape& shape, DType t) { return static_cast<size_t>(shape_numel(shape)) * dtype_size(t); }

}  // namespace

TypedTensor::TypedTensor(Tensor t) : shape(std::move(t.shape)), dtype(DType::F32), own_(std::move(t.data)) {
  data_ = own_.empty() ? nullptr : own_.data();
}

TypedTensor TypedTensor::from_f32(const Tensor& t, DType dtype) {
  check_float(dtype, "TypedTensor::from_f32");
  TypedTensor out;
  out.shape = t.shape;
  out.dtype = dtype;
  if (t.empty()) return out;  // stays empty (Tensor{} has shape {}, i.e. one element by shape)
  out.own_.resize(floats_for(bytes_of(out.shape, out.dtype)));
  out.data_ = out.own_.empty() ? nullptr : out.own_.data();
  if (out.data_) narrow(t.ptr(), dtype, out.own_.data(), t.numel());
  return out;
}

TypedTensor TypedTensor::copy_of(DType dtype, Shape shape, const void* src) {
  TypedTensor out;
  out.shape = std::move(shape);
  out.dtype = dtype;
  out.own_.resize(floats_for(bytes_of(out.shape, out.dtype)));
  out.data_ = out.own_.empty() ? nullptr : out.own_.data();
  if (out.data_) std::memcpy(out.own_.data(), src, out.nbytes());
  return out;
}

TypedTensor TypedTensor::view(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> keep_alive) {
  if (!keep_alive) fail("TypedTensor::view: no owner for the viewed bytes");
  TypedTensor out;
  out.shape = std::move(shape);
  out.dtype = dtype;
  out.keep_ = std::move(keep_alive);
  out.data_ = shape_numel(out.shape) == 0 ? nullptr : data;
  return out;
}

TypedTensor::TypedTensor(const TypedTensor& o) : shape(o.shape), dtype(o.dtype), own_(o.own_), keep_(o.keep_) {
  data_ = keep_ ? o.data_ : (own_.empty() ? nullptr : own_.data());
}

TypedTensor& TypedTensor::operator=(const TypedTensor& o) {
  if (this != &o) {
    TypedTensor tmp(o);
    *this = std::move(tmp);
  }
  return *this;
}

const void* TypedTensor::row_bytes(int64_t r) const {
  const int64_t row = shape.empty() ? 1 : numel() / shape[0];
  return static_cast<const uint8_t*>(data_) + static_cast<size_t>(r * row) * dtype_size(dtype);
}

const float* TypedTensor::ptr() const {
  if (dtype != DType::F32)
    fail("tensor {} is stored as {}: this path needs float32 values (to_f32)", shape_str(shape), dtype_name(dtype));
  if (reinterpret_cast<uintptr_t>(data_) % alignof(float) != 0)
    fail("tensor {} (F32) is not 4-byte aligned in its file: this path needs a float32 copy (to_f32)",
         shape_str(shape));
  return static_cast<const float*>(data_);
}

Tensor TypedTensor::to_f32() const {
  check_float(dtype, "TypedTensor::to_f32");
  // An empty tensor stays empty (a default one has shape {}, which Tensor(shape)
  // would read as one element).
  if (!data_) return shape_numel(shape) == 0 ? Tensor(shape) : Tensor{};
  Tensor out(shape);
  if (data_) widen(data_, dtype, out.ptr(), numel());
  return out;
}

float* TypedTensor::mutable_f32() {
  if (dtype != DType::F32 || keep_) *this = TypedTensor(to_f32());
  return own_.data();
}

TypedTensor TypedTensor::cast(DType to) const {
  check_float(to, "TypedTensor::cast");
  if (!data_) {  // empty stays empty
    TypedTensor out;
    out.shape = shape;
    out.dtype = to;
    return out;
  }
  if (to == dtype && !keep_) return *this;
  if (to == dtype) return copy_of(dtype, shape, data_);
  if (dtype == DType::F32 && reinterpret_cast<uintptr_t>(data_) % alignof(float) == 0) {
    TypedTensor out;
    out.shape = shape;
    out.dtype = to;
    out.own_.resize(floats_for(bytes_of(out.shape, out.dtype)));
    out.data_ = out.own_.empty() ? nullptr : out.own_.data();
    if (out.data_) narrow(static_cast<const float*>(data_), to, out.own_.data(), numel());
    return out;
  }
  return from_f32(to_f32(), to);
}

void convert_values(const void* src, DType from, void* dst, DType to, int64_t n) {
  check_float(from, "convert_values");
  check_float(to, "convert_values");
  if (from == to) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(to));
    return;
  }
  if (to == DType::F32) {
    widen(src, from, static_cast<float*>(dst), n);
    return;
  }
  if (from == DType::F32 && reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    narrow(static_cast<const float*>(src), to, dst, n);
    return;
  }
  constexpr int64_t kChunk = 4096;
  float buf[kChunk];
  const size_t fs = dtype_size(from), ts = dtype_size(to);
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    widen(static_cast<const uint8_t*>(src) + static_cast<size_t>(i) * fs, from, buf, m);
    narrow(buf, to, static_cast<uint8_t*>(dst) + static_cast<size_t>(i) * ts, m);
  }
}

void scale_values(TypedTensor& t, double a) {
  float* p = t.mutable_f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(p[i] * a);
}

const float* f32_or_convert(const TypedTensor& t, Tensor& scratch) {
  if (t.dtype == DType::F32 && reinterpret_cast<uintptr_t>(t.data()) % alignof(float) == 0)
    return static_cast<const float*>(t.data());
  scratch = t.to_f32();
  return scratch.ptr();
}

}  // namespace mlar
