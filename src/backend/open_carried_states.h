// Carried calibration states (runtime/carried_states.h) on the device a user names:
// host memory (file-backed above max_in_memory bytes) on the CPU, device memory on a
// GPU (a build with -DMLAR_CUDA=ON; otherwise a clear error).
#pragma once
#include <memory>

#include "model/model.h"
#include "runtime/carried_states.h"
#include "tensor/device.h"

namespace mlar {

std::unique_ptr<CarriedStates> open_carried_states(const Model& src, const TokenWindows& windows, Device device,
                                                   int64_t max_in_memory = CpuCarriedStates::kDefaultMaxInMemory);

}  // namespace mlar
