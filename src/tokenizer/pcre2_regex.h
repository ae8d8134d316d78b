// Internal: a compiled PCRE2 pattern (UTF-8, Unicode properties for \w \d \s), used
// for HF tokenizer.json Split / Replace patterns.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mlar::tok {

class Regex {
 public:
  // `literal`: match `pattern` as plain text. Throws mlar::Error naming `source`.
  Regex(std::string_view pattern, bool literal, const std::string& source);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // The non-overlapping matches in `s` (valid UTF-8), left to right, as byte ranges.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;
  // `s` with every match replaced by `with` (taken literally).
  std::string replace_all(std::string_view s, std::string_view with) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mlar::tok
