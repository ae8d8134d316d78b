// HF decoders: turn the token strings of a sequence back into text.
#include "tokenizer/byte_level.h"
#include "tokenizer/hf_components.h"
#include "tokenizer/pcre2_regex.h"
#include "tokenizer/spm_vocab.h"
#include "tokenizer/text_util.h"
#include "util/error.h"

namespace mlar::tok {
namespace {

class SequenceDec final : public HfDecoder {
 public:
  std::vector<std::unique_ptr<HfDecoder>> parts;
  void apply(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts) p->apply(tokens);
  }
};

// Each token's characters back to bytes (a token with a character outside the table
// stays as it is), the whole as UTF-8 with U+FFFD for ill-formed parts.
class ByteLevelDec final : public HfDecoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      std::string mine;
      bool ok = true;
      for (size_t i = 0; i < t.size() && ok;) {
        size_t n;
        const int b =
            valid_utf8_prefix_len(std::string_view(t).substr(i)) ? byte_level_byte(decode_code_point(t, i, &n)) : -1;
        if (b < 0) {
          ok = false;
        } else {
          mine += static_cast<char>(b);
          i += n;
        }
      }
      bytes += ok ? mine : t;
    }
    std::string text;
    append_bytes_rust_lossy(text, bytes);
    tokens.assign(1, std::move(text));
  }
};

class ReplaceDec final : public HfDecoder {
 public:
  std::string literal, content;
  std::unique_ptr<Regex> regex;
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      if (regex)
        t = regex->replace_all(t, content);
      else if (!literal.empty())
        t = replace_all(t, literal, content);
    }
  }
};

// Runs of <0xAB> tokens become their bytes when those are valid UTF-8, else one
// U+FFFD per byte.
class ByteFallbackDec final : public HfDecoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (is_valid_utf8(run)) {
        out.push_back(run);
      } else {
        for (size_t i = 0; i < run_len; ++i) out.emplace_back(kReplacementChar);
      }
      run.clear();
      run_len = 0;
    };
    for (auto& t : tokens) {
      const int b = byte_piece_value(t);
      if (b >= 0) {
        run += static_cast<char>(b);
        ++run_len;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDec final : public HfDecoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDec final : public HfDecoder {
 public:
  uint32_t content = ' ';
  size_t start = 0, stop = 0;
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<size_t, uint32_t>> chars;  // byte offset, code point
      for (size_t i = 0; i < t.size();) {
        size_t n;
        chars.emplace_back(i, decode_code_point(t, i, &n));
        i += n;
      }
      size_t b = 0, e = chars.size();
      while (b < start && b < chars.size() && chars[b].second == content) ++b;
      for (size_t k = 0; k < stop && e > b && chars[e - 1].second == content; ++k) --e;
      const size_t bb = b < chars.size() ? chars[b].first : t.size();
      const size_t ee = e < chars.size() ? chars[e].first : t.size();
      t = t.substr(bb, ee - bb);
    }
  }
};

class MetaspaceDec final : public HfDecoder {
 public:
  std::string replacement;
  bool strip_first = true;
  void apply(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = replace_all(tokens[i], replacement, i == 0 && strip_first ? "" : " ");
  }
};

}  // namespace

std::unique_ptr<HfDecoder> make_hf_decoder(const nlohmann::json& j, const std::string& source) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, source, "decoder");
  if (type == "Sequence") {
    auto s = std::make_unique<SequenceDec>();
    for (const auto& c : j.value("decoders", nlohmann::json::array()))
      if (auto d = make_hf_decoder(c, source)) s->parts.push_back(std::move(d));
    return s;
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (type == "Replace") {
    auto r = std::make_unique<ReplaceDec>();
    const auto& pat = j.at("pattern");
    r->content = j.at("content").get<std::string>();
    if (pat.contains("Regex"))
      r->regex = std::make_unique<Regex>(pat["Regex"].get<std::string>(), false, source);
    else if (pat.contains("String"))
      r->literal = pat["String"].get<std::string>();
    else
      fail("{}: Replace decoder pattern is neither String nor Regex: {}", source, pat.dump());
    return r;
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (type == "Fuse") return std::make_unique<FuseDec>();
  if (type == "Strip") {
    auto s = std::make_unique<StripDec>();
    const std::string c = j.value("content", std::string(" "));
    size_t n;
    s->content = c.empty() ? ' ' : decode_code_point(c, 0, &n);
    // Only non-negative integers: get<size_t>() of a float out of range is undefined behaviour.
    auto count = [&](const char* key) -> size_t {
      if (!j.contains(key)) return 0;
      if (!j[key].is_number_unsigned())
        fail("{}: Strip decoder {} must be a non-negative integer, got {}", source, key, j[key].dump().substr(0, 100));
      return j[key].get<size_t>();
    };
    s->start = count("start");
    s->stop = count("stop");
    return s;
  }
  if (type == "Metaspace") {
    auto m = std::make_unique<MetaspaceDec>();
    m->replacement = j.value("replacement", std::string(kSpaceSymbol));
    // tokenizers takes one character; an empty one made decode() loop forever.
    if (m->replacement.empty()) fail("{}: Metaspace decoder replacement is empty", source);
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string())
      m->strip_first = j["prepend_scheme"].get<std::string>() != "never";
    else
      m->strip_first = j.value("add_prefix_space", true);
    return m;
  }
  fail(
      "{}: unsupported decoder type '{}' (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, "
      "Metaspace)",
      source, type);
}

}  // namespace mlar::tok
