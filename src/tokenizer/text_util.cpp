#include "tokenizer/text_util.h"

namespace mlar::tok {

namespace {
// Number of bytes of a valid sequence given its lead byte, and the allowed range of
// the second byte (RFC 3629 table), or 0 for a byte that cannot lead.
struct Lead {
  size_t len;
  unsigned char lo, hi;
};
Lead lead_info(unsigned char c) {
  if (c < 0x80) return {1, 0, 0};
  if (c >= 0xC2 && c <= 0xDF) return {2, 0x80, 0xBF};
  if (c == 0xE0) return {3, 0xA0, 0xBF};
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return {3, 0x80, 0xBF};
  if (c == 0xED) return {3, 0x80, 0x9F};
  if (c == 0xF0) return {4, 0x90, 0xBF};
  if (c >= 0xF1 && c <= 0xF3) return {4, 0x80, 0xBF};
  if (c == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Number of bytes at the start of `s` that form a valid sequence or a valid prefix
// of one (at least 1); sets *complete when they form a whole valid sequence.
size_t maximal_subpart(std::string_view s, bool* complete) {
  const auto c = static_cast<unsigned char>(s[0]);
  Lead l = lead_info(c);
  *complete = false;
  if (l.len == 0) return 1;
  if (l.len == 1) {
    *complete = true;
    return 1;
  }
  size_t n = 1;
  for (; n < l.len && n < s.size(); ++n) {
    const auto b = static_cast<unsigned char>(s[n]);
    const unsigned char lo = n == 1 ? l.lo : 0x80, hi = n == 1 ? l.hi : 0xBF;
    if (b < lo || b > hi) return n;
  }
  *complete = n == l.len;
  return n;
}
}  // namespace

size_t valid_utf8_prefix_len(std::string_view s) {
  if (s.empty()) return 0;
  bool complete;
  size_t n = maximal_subpart(s, &complete);
  return complete ? n : 0;
}

uint32_t decode_code_point(std::string_view s, size_t i, size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    *len = 1;
    return c;
  }
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  uint32_t cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *len = n;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

void append_bytes_per_byte_lossy(std::string& out, std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t n = valid_utf8_prefix_len(bytes.substr(i));
    if (n == 0) {
      out += kReplacementChar;
      ++i;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
}

void append_bytes_rust_lossy(std::string& out, std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    bool complete;
    size_t n = maximal_subpart(bytes.substr(i), &complete);
    if (complete)
      out.append(bytes.substr(i, n));
    else
      out += kReplacementChar;
    i += n;
  }
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);  // would never advance
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (true) {
    size_t j = s.find(from, i);
    if (j == std::string_view::npos) break;
    out.append(s.substr(i, j - i));
    out.append(to);
    i = j + from.size();
  }
  out.append(s.substr(i));
  return out;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t n = valid_utf8_prefix_len(s.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace mlar::tok
