// libFuzzer target: a SentencePiece *.model through the project's protobuf reader
// (parse_spm_model) and complete_spm_vocab, as load_sentencepiece_tokenizer runs
// them; then the SentencePiece-BPE encoder over that vocabulary (piece types
// user-defined / unused / byte included, as GGUF token_type can give them).
#include <string_view>

#include "fuzz_util.h"
#include "tokenizer/spm_model_proto.h"
#include "tokenizer/spm_vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlar;
  try {
    tok::SpmModelInfo info =
        tok::parse_spm_model(std::string_view(reinterpret_cast<const char*>(data), size), "tokenizer.model");
    tok::complete_spm_vocab(info.vocab, "tokenizer.model");
    // GGUF and llama2.c vocabularies always have an <unk> id; without one the
    // encoder may drop text, which only libsentencepiece's path allows.
    if (info.vocab.unk_id >= 0)
      fuzz::exercise_tokenizer(*tok::make_spm_tokenizer(std::move(info.vocab), "tokenizer.model", "sentencepiece"),
                               fuzz::tail_text(data, size));
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  return 0;
}
