// load_tokenizer: picks the reader from the path.
#include <filesystem>

#include "tokenizer/load.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail("{}: no such tokenizer file or directory", path);
  if (fs::is_directory(st)) {
    const fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json")) return load_hf_tokenizer((dir / "tokenizer.json").string());
    if (fs::exists(dir / "tokenizer.model")) return load_sentencepiece_tokenizer((dir / "tokenizer.model").string());
    fail("{}: directory holds neither tokenizer.json nor tokenizer.model", path);
  }
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".bin") return load_llama2c_tokenizer(path);
  if (ext == ".model") return load_sentencepiece_tokenizer(path);
  if (ext == ".json") return load_hf_tokenizer(path);
  fail(
      "{}: unknown tokenizer format (expected a llama2.c .bin, a SentencePiece .model, an HF tokenizer.json, or "
      "a directory holding one)",
      path);
}

}  // namespace mlar
