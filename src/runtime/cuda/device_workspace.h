// Reusable device scratch for the CUDA forward pass: numbered slots of float (or
// int64) buffers that grow to the largest request and keep their memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/cuda/device.h"

namespace mlar {

class DeviceWorkspace {
 public:
  // At least `count` floats in slot `slot` (contents are not kept when it grows).
  float* get(size_t slot, int64_t count) { return static_cast<float*>(bytes(slot, count * 4)); }
  int64_t* get_i64(size_t slot, int64_t count) { return static_cast<int64_t*>(bytes(slot, count * 8)); }
  void* bytes(size_t slot, int64_t n) {
    if (slot >= bufs_.size()) bufs_.resize(slot + 1);
    bufs_[slot].reserve(static_cast<size_t>(n > 0 ? n : 1));
    return bufs_[slot].data();
  }

 private:
  std::vector<cuda::DeviceBuffer> bufs_;
};

}  // namespace mlar
