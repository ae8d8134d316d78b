// A Sequence over a model on the device a user names: Session on the CPU,
// CudaSession on a GPU (a build with -DMLAR_CUDA=ON; otherwise a clear error).
#pragma once
#include <memory>

#include "model/model.h"
#include "runtime/sequence.h"
#include "runtime/session.h"
#include "tensor/device.h"

namespace mlar {

std::unique_ptr<Sequence> open_sequence(const Model& model, const SessionOptions& opts, Device device);

}  // namespace mlar
