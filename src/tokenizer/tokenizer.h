// The tokenizer interface the runtime and the CLI use. Implementations: llama2.c
// tok*.bin, SentencePiece .model, HF tokenizer.json (BPE, byte-level or
// SentencePiece-style), GGUF tokenizer metadata.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mlar {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids for `text`, without BOS or EOS.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The text of a whole sequence of ids (BOS/EOS/control ids produce nothing), as
  // the tokenizer's own decoder would give it. Streaming callers decode the prefix
  // and print what is new (holding back an incomplete UTF-8 tail).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;

  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string kind() const = 0;  // "llama2c", "sentencepiece", "hf-bpe", "gguf"

  // Writes the files transformers expects for this tokenizer into `dir`
  // (tokenizer.model and/or tokenizer.json, tokenizer_config.json,
  // special_tokens_map.json).
  virtual void save_hf(const std::filesystem::path& dir) const = 0;
};

}  // namespace mlar
