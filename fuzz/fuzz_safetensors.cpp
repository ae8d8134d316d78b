// libFuzzer target: a .safetensors file (header JSON and data region) through
// SafetensorsFile, then every tensor's values through view_to_tensor.
#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlar;
  fuzz::MemFile file(data, size);
  try {
    SafetensorsFile f(file.path());
    MLAR_FUZZ_CHECK(f.data_start() >= 8 && f.data_start() <= size);
    for (const TensorView& v : f.tensors()) {
      MLAR_FUZZ_CHECK(f.find(v.name) == &v);
      MLAR_FUZZ_CHECK(v.begin <= v.end && f.data_start() + v.end <= size);
      MLAR_FUZZ_CHECK(static_cast<uint64_t>(v.numel()) * dtype_size(v.dtype) == v.nbytes());
      if (dtype_is_float_convertible(v.dtype)) {
        const Tensor t = f.to_float(v.name);
        MLAR_FUZZ_CHECK(t.numel() == v.numel());
      } else {
        bool threw = false;
        try {
          (void)f.to_float(v.name);
        } catch (const Error&) {
          threw = true;
        }
        MLAR_FUZZ_CHECK(threw);
      }
    }
    for (const auto& [k, val] : f.metadata()) (void)k.size(), (void)val.size();
    (void)f.find("no such tensor");
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  return 0;
}
