// libFuzzer target: a llama2.c checkpoint (.bin: 7 int32 header fields, then
// float32 tensors) through read_llama2c, then the layout conversion load_model applies.
#include "fuzz_util.h"
#include "io/llama2c.h"
#include "model/weights.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlar;
  fuzz::MemFile file(data, size);
  try {
    Model m = read_llama2c(file.path());
    fuzz::check_config(m.config);
    MLAR_FUZZ_CHECK(static_cast<uint64_t>(parameter_count(m.weights)) * 4 <= size);
    convert_rope_layout(m.config, m.weights, RopeLayout::Half);
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  return 0;
}
