#include "tensor/device.h"

#include <algorithm>
#include <cctype>

#include "util/error.h"

namespace mlar {

const char* device_name(Device d) { return d == Device::Cuda ? "cuda" : "cpu"; }

Device parse_device(const std::string& s, const std::string& context) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (l == "cpu") return Device::Cpu;
  if (l == "cuda" || l == "gpu") return Device::Cuda;
  fail("{}: unknown device '{}' (cpu, cuda)", context, s);
}

bool cuda_built() {
#ifdef MLAR_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace mlar
