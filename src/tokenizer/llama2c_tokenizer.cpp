// llama2.c tok*.bin: int32 max_token_length, then per token float32 score, int32
// byte length, bytes. Written by llama2.c's tokenizer.py from a SentencePiece model,
// with U+2581 turned into ' ' and <s>/</s> into "\n<s>\n"/"\n</s>\n".
#include <cstring>
#include <fstream>
#include <sstream>

#include "tokenizer/load.h"
#include "tokenizer/spm_vocab.h"
#include "tokenizer/text_util.h"
#include "util/error.h"

namespace mlar {

SpmVocab read_llama2c_vocab(const std::string& path, int64_t expected_vocab_size) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open llama2.c tokenizer", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_llama2c_vocab(ss.str(), path, expected_vocab_size);
}

SpmVocab parse_llama2c_vocab(std::string_view data, const std::string& path, int64_t expected_vocab_size) {
  size_t pos = 0;
  if (data.size() < 4) fail("{}: not a llama2.c tokenizer: {} bytes, too short for the header", path, data.size());
  int32_t max_len;
  std::memcpy(&max_len, data.data(), 4);
  pos = 4;
  if (max_len <= 0 || max_len > (1 << 20)) fail("{}: not a llama2.c tokenizer: max_token_length is {}", path, max_len);

  SpmVocab v;
  while (pos < data.size()) {
    const size_t i = v.pieces.size();
    if (expected_vocab_size >= 0 && static_cast<int64_t>(i) >= expected_vocab_size)
      fail("{}: llama2.c tokenizer holds more than the expected {} tokens ({} bytes left after token {})", path,
           expected_vocab_size, data.size() - pos, i);
    if (data.size() - pos < 8)
      fail("{}: truncated llama2.c tokenizer: token {} header needs 8 bytes at offset {}, {} left", path, i, pos,
           data.size() - pos);
    float score;
    int32_t len;
    std::memcpy(&score, data.data() + pos, 4);
    std::memcpy(&len, data.data() + pos + 4, 4);
    pos += 8;
    if (len < 0) fail("{}: llama2.c tokenizer token {} has negative length {} (byte offset {})", path, i, len, pos - 4);
    if (static_cast<size_t>(len) > data.size() - pos)
      fail(
          "{}: truncated llama2.c tokenizer: token {} of {} bytes runs past the end of the file (offset {}, {} bytes "
          "left)",
          path, i, len, pos, data.size() - pos);
    if (len > max_len)
      fail("{}: llama2.c tokenizer token {} has length {} above max_token_length {}", path, i, len, max_len);
    std::string piece(data.substr(pos, static_cast<size_t>(len)));
    pos += static_cast<size_t>(len);
    if (piece == "\n<s>\n")
      piece = "<s>";
    else if (piece == "\n</s>\n")
      piece = "</s>";
    else
      piece = tok::replace_all(piece, " ", tok::kSpaceSymbol);
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
  }
  if (v.pieces.empty()) fail("{}: llama2.c tokenizer holds no tokens", path);
  if (expected_vocab_size >= 0 && static_cast<int64_t>(v.pieces.size()) != expected_vocab_size)
    fail("{}: llama2.c tokenizer holds {} tokens, the model expects {}", path, v.pieces.size(), expected_vocab_size);
  if (v.pieces.size() < 3)
    fail("{}: llama2.c tokenizer holds only {} tokens (<unk>, <s>, </s> expected first)", path, v.pieces.size());
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.add_dummy_prefix = true;
  tok::complete_spm_vocab(v, path);
  return v;
}

std::shared_ptr<const Tokenizer> load_llama2c_tokenizer(const std::string& path, int64_t expected_vocab_size) {
  return tok::make_spm_tokenizer(read_llama2c_vocab(path, expected_vocab_size), path, "llama2c");
}

}  // namespace mlar
