// Whether this build can compute on a device a user names.
#pragma once
#include <string>

#include "tensor/device.h"

namespace mlar {

// Throws "<source>: --device cuda needs a build with the CUDA backend (cmake -DMLAR_CUDA=ON ...)" when
// `device` is Cuda and this build has none; does nothing otherwise.
void require_device_built(Device device, const std::string& source);

}  // namespace mlar
