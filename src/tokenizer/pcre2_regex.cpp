#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pcre2_regex.h"

#include <pcre2.h>

#include "tokenizer/text_util.h"
#include "util/error.h"

namespace mlar::tok {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  std::string source;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

namespace {
std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}
}  // namespace

Regex::Regex(std::string_view pattern, bool literal, const std::string& source) : impl_(std::make_unique<Impl>()) {
  impl_->source = source;
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // \C (one code unit) could end a match inside a character; the next pcre2_match
  // would then start there, undefined behaviour under PCRE2_NO_UTF_CHECK.
  const uint32_t options =
      literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;
  impl_->code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err, &err_off, nullptr);
  if (!impl_->code)
    fail("{}: cannot compile regex '{}' at offset {}: {}", source, pattern, static_cast<size_t>(err_off),
         pcre2_message(err));
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to the interpreter
}

Regex::~Regex() = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> out;
  // pcre2_match would re-check the whole subject at every call (quadratic): check once.
  if (!is_valid_utf8(s)) fail("{}: regex subject is not valid UTF-8", impl_->source);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  size_t off = 0;
  while (off <= s.size()) {
    const int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), off, PCRE2_NO_UTF_CHECK,
                               md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      fail("{}: regex match failed: {}", impl_->source, pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    out.emplace_back(b, e);
    if (e > b) {
      off = e;
    } else {  // empty match: step over one character
      if (e >= s.size()) break;
      const size_t n = valid_utf8_prefix_len(s.substr(e));
      off = e + (n == 0 ? 1 : n);
    }
  }
  pcre2_match_data_free(md);
  return out;
}

std::string Regex::replace_all(std::string_view s, std::string_view with) const {
  std::string out;
  out.reserve(s.size());
  size_t prev = 0;
  for (const auto& [b, e] : find_all(s)) {
    out.append(s.substr(prev, b - prev));
    out.append(with);
    prev = e;
  }
  out.append(s.substr(prev));
  return out;
}

}  // namespace mlar::tok
