// libFuzzer target: an HF tokenizer.json (BPE model, added tokens, normalizer,
// pre-tokenizer, decoder, post-processor) through parse_hf_tokenizer, then encode
// and decode. A NUL byte (never valid inside JSON text) splits the input: what
// follows it is the tokenizer_config.json beside the tokenizer.json.
#include <string>

#include "fuzz_util.h"
#include "tokenizer/load.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlar;
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  std::string tokenizer_json = in.substr(0, nul);
  std::string config_json = nul == std::string::npos ? std::string() : in.substr(nul + 1);
  try {
    auto t = parse_hf_tokenizer(std::move(tokenizer_json), "tokenizer.json", std::move(config_json));
    fuzz::exercise_tokenizer(*t, fuzz::tail_text(data, size));
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  return 0;
}
