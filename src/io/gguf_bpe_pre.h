// Internal: llama.cpp's byte-level BPE pre-tokenizers that GGUF's tokenizer.ggml.pre
// names, with the tokenizer.json pre-tokenizer each one is (gguf_bpe_vocab.h).
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace mlar::gguf_bpe {

struct PreTokenizer {
  std::string_view name;   // what the export writes
  std::string_view regex;  // the Split regex before ByteLevel; empty: ByteLevel's own GPT-2 regex
  bool ignore_merges;      // llama.cpp looks a whole pre-tokenized word up before merging
};

// By tokenizer.ggml.pre, including llama.cpp's other names for the same pre-tokenizer;
// nullptr when unknown.
const PreTokenizer* pre_by_name(std::string_view name);
// By the Split regex of a tokenizer.json (empty: ByteLevel with use_regex); nullptr
// when no known pre-tokenizer has it.
const PreTokenizer* pre_by_regex(std::string_view regex);
// "llama-bpe, qwen2, tekken, gpt-2", for messages.
std::string known_pre_names();

// tokenizer.json's "pre_tokenizer" for `p`.
nlohmann::json pre_tokenizer_json(const PreTokenizer& p);

}  // namespace mlar::gguf_bpe
