// Internal: GPT-2's byte-to-unicode table used by HF ByteLevel pre-tokenizers and
// decoders: the printable bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for
// themselves, the other 68 map in order to U+0100, U+0101, ...
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace mlar::tok {

// UTF-8 of the character standing for each byte.
const std::array<std::string, 256>& byte_level_chars();
// The byte a code point stands for, or -1.
int byte_level_byte(uint32_t cp);
// Maps every byte of `s` to its character.
std::string byte_level_encode(std::string_view s);

}  // namespace mlar::tok
