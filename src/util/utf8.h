// UTF-8 validation and code-point helpers.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace mlar {

// Returns the byte offset of the first invalid sequence, or npos if `s` is valid UTF-8.
size_t utf8_invalid_offset(std::string_view s);

// Reads a whole text file; throws mlar::Error naming the file (and the byte offset)
// if it cannot be read or is not valid UTF-8.
std::string read_utf8_file(const std::string& path);

// Length in bytes of the UTF-8 sequence starting with lead byte c (1 for invalid bytes).
inline size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xe) return 3;
  if ((c >> 3) == 0x1e) return 4;
  return 1;
}

}  // namespace mlar
