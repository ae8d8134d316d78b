#include "backend/open_carried_states.h"

#include "backend/device_built.h"
#ifdef MLAR_HAVE_CUDA
#include "runtime/cuda/cuda_carried_states.h"
#endif

namespace mlar {

std::unique_ptr<CarriedStates> open_carried_states(const Model& src, const TokenWindows& windows, Device device,
                                                   int64_t max_in_memory) {
  if (device == Device::Cpu) return std::make_unique<CpuCarriedStates>(src, windows, max_in_memory);
#ifdef MLAR_HAVE_CUDA
  return std::make_unique<CudaCarriedStates>(src, windows);
#else
  require_device_built(device, src.source);
  return {};
#endif
}

}  // namespace mlar
