// A tensor kept in its storage dtype: the form model weights take (and, later, device
// memory). Row-major, outermost dimension first, HF [out, in] for projections.
//
// Storage is either owned (value semantics: a copy copies the bytes) or a view of
// bytes someone else keeps alive, typically a memory-mapped model file. A view is
// read-only: mutable access (mutable_f32) first materialises an owned float32 copy.
// Kernels read F32/BF16/F16 storage directly (ops/typed_matmul.h); code that needs
// float32 values of a BF16 tensor asks for them explicitly (to_f32, f32_or_convert).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace mlar {

class TypedTensor {
 public:
  Shape shape;
  DType dtype = DType::F32;

  TypedTensor() = default;
  // Owns the float32 values of `t` (moved, no copy). Implicit: a computed Tensor can be
  // stored where a weight goes.
  TypedTensor(Tensor t);  // NOLINT(google-explicit-constructor)
  // Owns a copy of `t` rounded to `dtype` (F32 | BF16 | F16; nearest even).
  static TypedTensor from_f32(const Tensor& t, DType dtype);
  // Owns `nbytes` bytes copied from `src`, which holds numel(shape) values of `dtype`.
  static TypedTensor copy_of(DType dtype, Shape shape, const void* src);
  // Views numel(shape) values of `dtype` at `data` (no copy); `keep_alive` owns them
  // (e.g. the mapped file) and lives as long as any copy of this view.
  static TypedTensor view(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> keep_alive);

  // Immutable F32 values shared by every copy (e.g. one constant matrix placed in
  // every layer): a view whose owner is `t` itself.
  static TypedTensor shared(Tensor t);

  TypedTensor(const TypedTensor& o);
  TypedTensor& operator=(const TypedTensor& o);
  TypedTensor(TypedTensor&&) noexcept = default;
  TypedTensor& operator=(TypedTensor&&) noexcept = default;

  // 0 without storage, like Tensor (a default tensor's shape {} alone would give 1).
  int64_t numel() const { return data_ ? shape_numel(shape) : 0; }
  int64_t dim(size_t i) const { return shape.at(i); }
  int ndim() const { return static_cast<int>(shape.size()); }
  bool empty() const { return numel() == 0 || data_ == nullptr; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  Device device() const { return Device::Cpu; }  // host bytes (ops/cuda/device_tensor.h holds device copies)
  bool is_view() const { return keep_ != nullptr; }   // bytes owned elsewhere (a mapped file)
  const void* data() const { return data_; }          // raw bytes of `dtype`
  // Bytes of row r (first dimension) of an [rows, ...] tensor.
  const void* row_bytes(int64_t r) const;

  // float32 values when the storage is F32 (owned, or a 4-byte-aligned view); throws
  // mlar::Error naming the dtype otherwise: that code path must call to_f32().
  const float* ptr() const;
  // The same, row r of a 2-D F32 tensor.
  const float* row(int64_t r) const { return ptr() + r * shape.back(); }
  // A float32 copy of the values (any float dtype).
  Tensor to_f32() const;
  // Mutable float32 values: converts/copies into owned F32 storage first if needed
  // (a view or a BF16 tensor is materialised once, then stays F32).
  float* mutable_f32();
  float* ptr() { return mutable_f32(); }
  float* row(int64_t r) { return mutable_f32() + r * shape.back(); }
  // An owned copy in `dtype` (F32 | BF16 | F16).
  TypedTensor cast(DType dtype) const;

 private:
  std::vector<float> own_;  // owned storage (float-aligned; holds bf16/f16 bytes too)
  std::shared_ptr<const void> keep_;
  const void* data_ = nullptr;
};

// dst[0..n) = src[0..n) converted from `from` to `to` (F32 | BF16 | F16; widening is
// exact, narrowing rounds to nearest even). Same types: a byte copy.
void convert_values(const void* src, DType from, void* dst, DType to, int64_t n);

// t *= a, computed in double and stored as float32 (materialises `t` as owned F32).
void scale_values(TypedTensor& t, double a);

// float32 values of `t` without a copy when it is F32 (`scratch` unused), else
// converted into `scratch`. For code that reads a whole tensor as float32 once.
const float* f32_or_convert(const TypedTensor& t, Tensor& scratch);

}  // namespace mlar
