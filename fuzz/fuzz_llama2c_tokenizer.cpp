// libFuzzer target: a llama2.c tokenizer (tok*.bin) through parse_llama2c_vocab and
// the SentencePiece-BPE tokenizer load_llama2c_tokenizer builds from it.
#include <string_view>

#include "fuzz_util.h"
#include "tokenizer/load.h"
#include "tokenizer/spm_vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlar;
  try {
    SpmVocab v = parse_llama2c_vocab(std::string_view(reinterpret_cast<const char*>(data), size), "tok.bin");
    fuzz::exercise_tokenizer(*tok::make_spm_tokenizer(std::move(v), "tok.bin", "llama2c"), fuzz::tail_text(data, size));
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  return 0;
}
