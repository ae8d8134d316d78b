// A TypedTensor's bytes copied to device memory once (weights), in the same dtype
// and shape, or converted to another float dtype on the way.
#pragma once
#include "ops/cuda/device.h"
#include "ops/kv_attention.h"  // TypedRows
#include "tensor/typed_tensor.h"

namespace mlar::cuda {

struct DeviceTensor {
  Shape shape;
  DType dtype = DType::F32;
  DeviceBuffer buf;

  bool empty() const { return buf.data() == nullptr; }
  int64_t numel() const { return empty() ? 0 : shape_numel(shape); }
  // Rows of a 2-D [rows, cols] tensor (stride cols); a 1-D tensor is one row.
  ops::TypedRows rows() const { return {buf.data(), dtype, shape.empty() ? 0 : shape.back()}; }
  const float* f32() const;  // throws unless dtype is F32
};

// A device copy of `t` (any float dtype; a memory-mapped view is read straight from
// the mapping). `as`: F32 | BF16 | F16 to convert on the host first, or t.dtype.
// An empty t gives an empty DeviceTensor.
DeviceTensor to_device(const TypedTensor& t);
DeviceTensor to_device(const TypedTensor& t, DType as);

}  // namespace mlar::cuda
