// UTF-8 helpers shared by the tokenizers (internal to src/tokenizer).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mlar::tok {

// U+2581, SentencePiece's visible space.
inline constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence at the start of `s` (0 if it is not one:
// truncated, overlong, surrogate, out of range, or stray continuation byte).
size_t valid_utf8_prefix_len(std::string_view s);

// Decodes the code point at s[i] (which must start a valid sequence, see above).
uint32_t decode_code_point(std::string_view s, size_t i, size_t* len);

void append_utf8(std::string& out, uint32_t cp);

// Bytes to text as SentencePiece's decoder does: every byte that does not start a
// valid sequence becomes U+FFFD.
void append_bytes_per_byte_lossy(std::string& out, std::string_view bytes);

// Bytes to text as Rust's String::from_utf8_lossy does: each maximal ill-formed
// subpart (a truncated prefix of a valid sequence, or a single bad byte) becomes U+FFFD.
void append_bytes_rust_lossy(std::string& out, std::string_view bytes);

// Replaces every occurrence of `from` (non-empty) with `to`.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

// s = prefix + s.
inline void prepend(std::string& s, std::string_view prefix) {
  std::string r;
  r.reserve(prefix.size() + s.size());
  r.append(prefix);
  r.append(s);
  s.swap(r);
}

// Whether `s` is valid UTF-8 throughout.
bool is_valid_utf8(std::string_view s);

}  // namespace mlar::tok
