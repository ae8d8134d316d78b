#include "backend/open_sequence.h"

#include "backend/device_built.h"
#ifdef MLAR_HAVE_CUDA
#include "runtime/cuda/cuda_session.h"
#endif

namespace mlar {

std::unique_ptr<Sequence> open_sequence(const Model& model, const SessionOptions& opts, Device device) {
  if (device == Device::Cpu) return std::make_unique<Session>(model, opts);
#ifdef MLAR_HAVE_CUDA
  return std::make_unique<CudaSession>(model, opts);
#else
  require_device_built(device, model.source);
  return {};
#endif
}

}  // namespace mlar
