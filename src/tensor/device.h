// Where tensors live and kernels run. Cuda needs a build with -DMLAR_CUDA=ON
// (ops/cuda) and a GPU; everything else is the CPU.
#pragma once
#include <string>

namespace mlar {

enum class Device { Cpu, Cuda };

const char* device_name(Device d);  // "cpu", "cuda"
// Parses what a user names ("cpu", "cuda"; case-insensitive). Throws mlar::Error
// "<context>: unknown device ..." otherwise.
Device parse_device(const std::string& s, const std::string& context);
// Whether this build has the CUDA backend (it may still find no GPU at run time).
bool cuda_built();

}  // namespace mlar
