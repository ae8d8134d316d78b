// Tokenizer factories.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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
  // SentencePiece's normalizer option: drop leading and trailing spaces and collapse
  // runs of spaces to one. Unset means infer from the vocabulary: true when no piece
  // is made of two or more U+2581 only (a vocabulary trained on collapsed text, like
  // llama2.c's tok*.bin, cannot hold one; Llama's 32000-piece vocabulary does).
  std::optional<bool> remove_extra_whitespaces;
};
// kind() of the result is "gguf".
std::shared_ptr<const Tokenizer> make_spm_vocab_tokenizer(SpmVocab vocab, const std::string& source);

// The vocabulary of a llama2.c tok*.bin (int32 max_token_length, then per token:
// float32 score, int32 byte length, bytes; spaces stored as ' ', <s>/</s> as
// "\n<s>\n"/"\n</s>\n"), with types inferred. expected_vocab_size >= 0 makes a file
// holding another number of tokens an error. Throws mlar::Error naming the file.
SpmVocab read_llama2c_vocab(const std::string& path, int64_t expected_vocab_size = -1);
// The same from the bytes of such a file; `source` names it in errors.
SpmVocab parse_llama2c_vocab(std::string_view data, const std::string& source, int64_t expected_vocab_size = -1);
std::shared_ptr<const Tokenizer> load_llama2c_tokenizer(const std::string& path, int64_t expected_vocab_size = -1);

// A SentencePiece *.model through libsentencepiece.
std::shared_ptr<const Tokenizer> load_sentencepiece_tokenizer(const std::string& path);

// An HF tokenizer.json (BPE model); bos/eos from tokenizer_config.json beside it when present.
std::shared_ptr<const Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path);
// The same from the text of a tokenizer.json (and of the tokenizer_config.json beside
// it, empty when there is none); `source` names the tokenizer.json in errors.
std::shared_ptr<const Tokenizer> parse_hf_tokenizer(std::string tokenizer_json, const std::string& source,
                                                    std::string tokenizer_config_json = {});

}  // namespace mlar
