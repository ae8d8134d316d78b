// Tokenizer factories.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mlar {

// Loads a tokenizer file: llama2.c tok*.bin, SentencePiece *.model, HF tokenizer.json,
// or an HF directory holding tokenizer.json or tokenizer.model (tokenizer.json preferred).
// Throws mlar::Error naming the file on anything malformed.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path);

// A SentencePiece-style BPE vocabulary given as pieces with scores and types (the
// form llama2.c tok*.bin and GGUF `tokenizer.ggml.model = llama` carry). Encodes as
// SentencePiece BPE does. types: 1 normal, 2 unknown, 3 control, 6 byte (<0xAB>), as
// in GGUF; empty means infer (control for <s>/</s>/<unk>, byte for <0x..>).
struct SpmVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  int32_t bos_id = 1, eos_id = 2, unk_id = 0;
  bool add_dummy_prefix = true;
};
std::shared_ptr<const Tokenizer> make_spm_vocab_tokenizer(SpmVocab vocab, const std::string& source);

}  // namespace mlar
