// HF normalizers.
#include "tokenizer/hf_components.h"
#include "tokenizer/pcre2_regex.h"
#include "tokenizer/text_util.h"
#include "util/error.h"

namespace mlar::tok {

std::string json_type(const nlohmann::json& j, const std::string& source, const char* what) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail("{}: {} is not an object with a string \"type\": {}", source, what, j.dump().substr(0, 200));
  return j["type"].get<std::string>();
}

bool is_unicode_whitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

namespace {

class SequenceNormalizer final : public HfNormalizer {
 public:
  std::vector<std::unique_ptr<HfNormalizer>> parts;
  void apply(std::string& s) const override {
    for (const auto& p : parts) p->apply(s);
  }
};

class PrependNormalizer final : public HfNormalizer {
 public:
  std::string prefix;
  void apply(std::string& s) const override {
    if (!s.empty()) prepend(s, prefix);
  }
};

class ReplaceNormalizer final : public HfNormalizer {
 public:
  std::string literal, content;
  std::unique_ptr<Regex> regex;
  void apply(std::string& s) const override {
    if (regex)
      s = regex->replace_all(s, content);
    else if (!literal.empty())
      s = replace_all(s, literal, content);
  }
};

class StripNormalizer final : public HfNormalizer {
 public:
  bool left = false, right = false;
  void apply(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left) {
      while (b < e) {
        size_t n;
        if (!is_unicode_whitespace(decode_code_point(s, b, &n))) break;
        b += n;
      }
    }
    if (right) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t n;
        if (!is_unicode_whitespace(decode_code_point(s, start, &n))) break;
        e = start;
      }
    }
    s = s.substr(b, e - b);
  }
};

class IdentityNormalizer final : public HfNormalizer {
 public:
  void apply(std::string&) const override {}
};

}  // namespace

std::unique_ptr<HfNormalizer> make_hf_normalizer(const nlohmann::json& j, const std::string& source) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, source, "normalizer");
  if (type == "Sequence") {
    auto n = std::make_unique<SequenceNormalizer>();
    for (const auto& c : j.value("normalizers", nlohmann::json::array()))
      if (auto p = make_hf_normalizer(c, source)) n->parts.push_back(std::move(p));
    return n;
  }
  if (type == "Prepend") {
    auto n = std::make_unique<PrependNormalizer>();
    n->prefix = j.at("prepend").get<std::string>();
    return n;
  }
  if (type == "Replace") {
    auto n = std::make_unique<ReplaceNormalizer>();
    const auto& pat = j.at("pattern");
    n->content = j.at("content").get<std::string>();
    if (pat.contains("Regex"))
      n->regex = std::make_unique<Regex>(pat["Regex"].get<std::string>(), false, source);
    else if (pat.contains("String"))
      n->literal = pat["String"].get<std::string>();
    else
      fail("{}: Replace normalizer pattern is neither String nor Regex: {}", source, pat.dump());
    return n;
  }
  if (type == "Strip") {
    auto n = std::make_unique<StripNormalizer>();
    n->left = j.value("strip_left", true);
    n->right = j.value("strip_right", true);
    return n;
  }
  if (type == "NFC") return std::make_unique<IdentityNormalizer>();
  fail("{}: unsupported normalizer type '{}' (supported: Sequence, Prepend, Replace, Strip, NFC)", source, type);
}

}  // namespace mlar::tok
