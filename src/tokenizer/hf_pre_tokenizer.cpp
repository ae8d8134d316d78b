// HF pre-tokenizers: split a piece of text into the words BPE runs on.
#include <algorithm>

#include "tokenizer/byte_level.h"
#include "tokenizer/hf_components.h"
#include "tokenizer/pcre2_regex.h"
#include "tokenizer/text_util.h"
#include "util/error.h"

namespace mlar::tok {
namespace {

// GPT-2's pattern, used by ByteLevel with use_regex.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& b, const std::string& source) {
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  fail("{}: unknown Split behavior '{}'", source, b);
}

struct Segment {
  size_t begin, end;
  bool flag;  // is a match, then: to be removed
};

// Splits `piece` at the matches of `re` as tokenizers' NormalizedString::split does,
// appending the non-empty results to `out`.
void split_piece(const HfPiece& piece, const Regex& re, Behavior behavior, bool invert, std::vector<HfPiece>& out) {
  const std::string& s = piece.text;
  std::vector<Segment> matches;
  size_t prev = 0;
  for (const auto& [b, e] : re.find_all(s)) {
    if (prev != b) matches.push_back({prev, b, false});
    matches.push_back({b, e, true});
    prev = e;
  }
  if (prev != s.size()) matches.push_back({prev, s.size(), false});
  if (invert)
    for (auto& m : matches) m.flag = !m.flag;

  std::vector<Segment> splits;
  switch (behavior) {
    case Behavior::Isolated:
      for (auto m : matches) splits.push_back({m.begin, m.end, false});
      break;
    case Behavior::Removed:
      splits = matches;
      break;
    case Behavior::Contiguous: {
      bool prev_match = false;
      for (const auto& m : matches) {
        if (m.flag == prev_match && !splits.empty())
          splits.back().end = m.end;
        else
          splits.push_back({m.begin, m.end, false});
        prev_match = m.flag;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const auto& m : matches) {
        if (m.flag && !prev_match && !splits.empty())
          splits.back().end = m.end;
        else
          splits.push_back({m.begin, m.end, false});
        prev_match = m.flag;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        if (it->flag && !prev_match && !splits.empty())
          splits.back().begin = it->begin;
        else
          splits.push_back({it->begin, it->end, false});
        prev_match = it->flag;
      }
      std::reverse(splits.begin(), splits.end());
      break;
    }
  }
  for (const auto& sp : splits) {
    if (sp.flag || sp.begin == sp.end) continue;
    out.push_back({s.substr(sp.begin, sp.end - sp.begin), piece.first && sp.begin == 0});
  }
}

class SequencePre final : public HfPreTokenizer {
 public:
  std::vector<std::unique_ptr<HfPreTokenizer>> parts;
  void apply(std::vector<HfPiece>& pieces) const override {
    for (const auto& p : parts) p->apply(pieces);
  }
};

class SplitPre final : public HfPreTokenizer {
 public:
  std::unique_ptr<Regex> re;
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  void apply(std::vector<HfPiece>& pieces) const override {
    std::vector<HfPiece> out;
    out.reserve(pieces.size());
    for (const auto& p : pieces) split_piece(p, *re, behavior, invert, out);
    pieces = std::move(out);
  }
};

class ByteLevelPre final : public HfPreTokenizer {
 public:
  bool add_prefix_space = false;
  std::unique_ptr<Regex> re;  // GPT-2 pattern when use_regex
  void apply(std::vector<HfPiece>& pieces) const override {
    std::vector<HfPiece> out;
    out.reserve(pieces.size());
    for (auto& p : pieces) {
      if (add_prefix_space && (p.text.empty() || p.text[0] != ' ')) tok::prepend(p.text, " ");
      if (re)
        split_piece(p, *re, Behavior::Isolated, false, out);
      else if (!p.text.empty())
        out.push_back(std::move(p));
    }
    for (auto& p : out) p.text = byte_level_encode(p.text);
    pieces = std::move(out);
  }
};

class MetaspacePre final : public HfPreTokenizer {
 public:
  std::string replacement;
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;
  bool split = true;
  std::unique_ptr<Regex> re;  // the replacement, literally
  void apply(std::vector<HfPiece>& pieces) const override {
    std::vector<HfPiece> out;
    out.reserve(pieces.size());
    for (auto& p : pieces) {
      p.text = replace_all(p.text, " ", replacement);
      const bool starts = p.text.compare(0, replacement.size(), replacement) == 0;
      if (!starts && (prepend == Prepend::Always || (prepend == Prepend::First && p.first)))
        tok::prepend(p.text, replacement);
      if (split)
        split_piece(p, *re, Behavior::MergedWithNext, false, out);
      else if (!p.text.empty())
        out.push_back(std::move(p));
    }
    pieces = std::move(out);
  }
};

std::unique_ptr<SplitPre> make_split(std::string_view pattern, bool literal, Behavior b, bool invert,
                                     const std::string& source) {
  auto s = std::make_unique<SplitPre>();
  s->re = std::make_unique<Regex>(pattern, literal, source);
  s->behavior = b;
  s->invert = invert;
  return s;
}

}  // namespace

std::unique_ptr<HfPreTokenizer> make_hf_pre_tokenizer(const nlohmann::json& j, const std::string& source) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, source, "pre_tokenizer");
  if (type == "Sequence") {
    auto s = std::make_unique<SequencePre>();
    for (const auto& c : j.value("pretokenizers", nlohmann::json::array()))
      if (auto p = make_hf_pre_tokenizer(c, source)) s->parts.push_back(std::move(p));
    return s;
  }
  if (type == "ByteLevel") {
    auto b = std::make_unique<ByteLevelPre>();
    b->add_prefix_space = j.value("add_prefix_space", true);
    if (j.value("use_regex", true)) b->re = std::make_unique<Regex>(kGpt2Pattern, false, source);
    return b;
  }
  if (type == "Split") {
    const auto& pat = j.at("pattern");
    const Behavior b = parse_behavior(j.at("behavior").get<std::string>(), source);
    const bool invert = j.value("invert", false);
    if (pat.contains("Regex")) return make_split(pat["Regex"].get<std::string>(), false, b, invert, source);
    if (pat.contains("String")) return make_split(pat["String"].get<std::string>(), true, b, invert, source);
    fail("{}: Split pattern is neither String nor Regex: {}", source, pat.dump());
  }
  if (type == "Metaspace") {
    auto m = std::make_unique<MetaspacePre>();
    m->replacement = j.value("replacement", std::string(kSpaceSymbol));
    if (m->replacement.empty()) fail("{}: Metaspace pre_tokenizer replacement is empty", source);
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      const std::string ps = j["prepend_scheme"].get<std::string>();
      if (ps == "always")
        m->prepend = MetaspacePre::Prepend::Always;
      else if (ps == "first")
        m->prepend = MetaspacePre::Prepend::First;
      else if (ps == "never")
        m->prepend = MetaspacePre::Prepend::Never;
      else
        fail("{}: unknown Metaspace prepend_scheme '{}'", source, ps);
    } else {
      m->prepend = j.value("add_prefix_space", true) ? MetaspacePre::Prepend::Always : MetaspacePre::Prepend::Never;
    }
    m->split = j.value("split", true);
    m->re = std::make_unique<Regex>(m->replacement, true, source);
    return m;
  }
  if (type == "Digits") {
    const bool individual = j.value("individual_digits", false);
    return make_split("\\p{N}", false, individual ? Behavior::Isolated : Behavior::Contiguous, false, source);
  }
  if (type == "WhitespaceSplit")
    return make_split(
        "[\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]", false,
        Behavior::Removed, false, source);
  if (type == "Whitespace") return make_split("\\w+|[^\\w\\s]+", false, Behavior::Removed, true, source);
  fail(
      "{}: unsupported pre_tokenizer type '{}' (supported: Sequence, ByteLevel, Split, Metaspace, Digits, "
      "Whitespace, WhitespaceSplit)",
      source, type);
}

}  // namespace mlar::tok
