#include "backend/device_built.h"

#include "util/error.h"

namespace mlar {

void require_device_built(Device device, const std::string& source) {
  if (device == Device::Cuda && !cuda_built())
    fail("{}: --device cuda needs a build with the CUDA backend (cmake -DMLAR_CUDA=ON, see docs/benchmarks-gpu.md)",
         source);
}

}  // namespace mlar
