#include "ops/cuda/device_tensor.h"

#include "util/error.h"

namespace mlar::cuda {

const float* DeviceTensor::f32() const {
  if (dtype != DType::F32) fail("DeviceTensor: {} values asked for as F32", dtype_name(dtype));
  return buf.as<float>();
}

DeviceTensor to_device(const TypedTensor& t) { return to_device(t, t.dtype); }

DeviceTensor to_device(const TypedTensor& t, DType as) {
  DeviceTensor d;
  if (t.empty()) return d;
  d.shape = t.shape;
  d.dtype = as;
  if (as == t.dtype) {
    d.buf = DeviceBuffer(t.nbytes());
    upload(d.buf.data(), t.data(), t.nbytes());
  } else {
    TypedTensor c = t.cast(as);
    d.buf = DeviceBuffer(c.nbytes());
    upload(d.buf.data(), c.data(), c.nbytes());
  }
  return d;
}

}  // namespace mlar::cuda
