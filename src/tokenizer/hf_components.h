// Internal: the parts of an HF tokenizer.json pipeline the toolkit supports
// (normalizer, pre-tokenizer, decoder), each built from its JSON object and applied
// as the `tokenizers` library applies it.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlar::tok {

// Normalizers: Sequence, Prepend, Replace (String or Regex), Strip, NFC. NFC is passed
// through unchanged (no Unicode tables here): text already in NFC, as nearly all
// text is, comes out the same.
class HfNormalizer {
 public:
  virtual ~HfNormalizer() = default;
  virtual void apply(std::string& s) const = 0;
};
// null JSON gives nullptr. Throws mlar::Error naming `source` for unsupported types.
std::unique_ptr<HfNormalizer> make_hf_normalizer(const nlohmann::json& j, const std::string& source);

// A piece of text during pre-tokenization; `first` when it starts at offset 0 of the
// original input (Metaspace's prepend_scheme "first" looks at that).
struct HfPiece {
  std::string text;
  bool first;
};

// Pre-tokenizers: Sequence, ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit.
class HfPreTokenizer {
 public:
  virtual ~HfPreTokenizer() = default;
  virtual void apply(std::vector<HfPiece>& pieces) const = 0;
};
std::unique_ptr<HfPreTokenizer> make_hf_pre_tokenizer(const nlohmann::json& j, const std::string& source);

// Decoders: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace.
class HfDecoder {
 public:
  virtual ~HfDecoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;
};
std::unique_ptr<HfDecoder> make_hf_decoder(const nlohmann::json& j, const std::string& source);

// Helpers shared by the parts.
std::string json_type(const nlohmann::json& j, const std::string& source, const char* what);
bool is_unicode_whitespace(uint32_t cp);

}  // namespace mlar::tok
