#include "tokenizer/byte_level.h"

#include "tokenizer/text_util.h"

namespace mlar::tok {
namespace {

struct Tables {
  std::array<std::string, 256> chars;
  std::array<int, 512> bytes{};  // code point -> byte, for code points below 512
  Tables() {
    bytes.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? b : next++;
      append_utf8(chars[b], cp);
      bytes[cp] = static_cast<int>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const std::array<std::string, 256>& byte_level_chars() { return tables().chars; }

int byte_level_byte(uint32_t cp) { return cp < 512 ? tables().bytes[cp] : -1; }

std::string byte_level_encode(std::string_view s) {
  const auto& chars = tables().chars;
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) out += chars[static_cast<unsigned char>(c)];
  return out;
}

}  // namespace mlar::tok
