// SentencePiece *.model through libsentencepiece.
#include <sentencepiece_processor.h>

#include <fstream>
#include <sstream>

#include "tokenizer/load.h"
#include "tokenizer/spm_hf_export.h"
#include "tokenizer/spm_model_proto.h"
#include "tokenizer/spm_vocab.h"
#include "util/error.h"

namespace mlar {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& path, std::string bytes) : path_(path), bytes_(std::move(bytes)) {
    info_ = tok::parse_spm_model(bytes_, path_);
    const auto status = sp_.LoadFromSerializedProto(bytes_);
    if (!status.ok()) fail("{}: libsentencepiece cannot load the model: {}", path_, status.ToString());
    info_.vocab.bos_id = sp_.bos_id();
    info_.vocab.eos_id = sp_.eos_id();
    info_.vocab.unk_id = sp_.unk_id();
    tok::complete_spm_vocab(info_.vocab, path_);
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) fail("{}: SentencePiece encode failed: {}", path_, status.ToString());
    return std::vector<int32_t>(ids.begin(), ids.end());
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::vector<int> v(ids.begin(), ids.end());
    for (int id : v)
      if (id < 0 || id >= sp_.GetPieceSize())
        fail("{}: token id {} is outside the vocabulary of {}", path_, id, sp_.GetPieceSize());
    std::string text;
    const auto status = sp_.Decode(v, &text);
    if (!status.ok()) fail("{}: SentencePiece decode failed: {}", path_, status.ToString());
    return text;
  }

  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::string kind() const override { return "sentencepiece"; }

  void save_hf(const std::filesystem::path& dir) const override {
    // The Llama tokenizer.json form describes BPE over an identity normalizer only;
    // other models get tokenizer.model and the configs (transformers converts them).
    const bool llama_form = info_.model_type == 2 && info_.charsmap_size == 0 && !info_.treat_whitespace_as_suffix &&
                            info_.escape_whitespaces;
    tok::save_spm_hf(info_.vocab, dir, bytes_, llama_form);
  }

 private:
  std::string path_, bytes_;
  tok::SpmModelInfo info_;
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::shared_ptr<const Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open SentencePiece model", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return std::make_shared<SentencePieceTokenizer>(path, ss.str());
}

}  // namespace mlar
