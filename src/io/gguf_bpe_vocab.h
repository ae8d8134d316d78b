// Byte-level BPE tokenizers (GPT-2 style, as Llama 3 and Qwen2 use) as GGUF
// tokenizer.ggml.* metadata, in llama.cpp's "gpt2" form, and back.
//
// The form: tokenizer.ggml.model "gpt2"; tokenizer.ggml.tokens, every id from 0 to the
// embedding's rows, each token as tokenizer.json spells it (byte-level characters,
// "Ġ" for a space), ids no token has filled with "[PADi]"; tokenizer.ggml.token_type
// (1 normal, 3 control: special added tokens and added tokens that look special,
// 4 user-defined: other added tokens, 5 unused: the fillers); tokenizer.ggml.merges,
// "a b" in rank order; tokenizer.ggml.pre, the name llama.cpp compiles its
// pre-tokenizer regex from; special ids and tokenizer.ggml.add_bos_token /
// add_eos_token. That is what llama.cpp's convert_hf_to_gguf.py writes, except that
// add_bos_token / add_eos_token are always written, from what the HF tokenizer adds
// (tokenizer_config.json, else its post-processor), so llama.cpp's per-pre default
// (llama-bpe adds BOS) does not decide.
//
// llama.cpp has no regex in the file: tokenizer.ggml.pre names one of its built-in
// pre-tokenizers. Known here (the tokenizer.json pre-tokenizer each stands for):
//   llama-bpe  Split(Llama 3 regex, Isolated) + ByteLevel(no prefix space, no regex);
//              llama.cpp ignores merges for whole-word tokens (ignore_merges)
//   qwen2      Split(Qwen2 regex: single digits) + ByteLevel, merges applied
//   tekken     Split(Mistral-Nemo regex) + ByteLevel; ignore_merges
//   gpt-2      ByteLevel(no prefix space, GPT-2 regex)
// The reader also takes llama.cpp's other names for the same pre-tokenizers.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "tokenizer/tokenizer.h"

namespace mlar {

// GGUF token types (llama.cpp's llama_token_type).
namespace gguf_tok {
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;
}

struct GgufBpeVocab {
  std::vector<std::string> tokens;  // [vocab rows], by id
  std::vector<int32_t> types;       // [vocab rows]
  std::vector<std::string> merges;  // "a b", rank order
  std::string pre;                  // tokenizer.ggml.pre
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;  // -1: none
  bool add_bos = false, add_eos = false;
};

// The "gpt2" vocabulary of `tok` from its HF files in `dir` (tokenizer.json and the
// tokenizer_config.json beside it, as tok.save_hf wrote them), padded to `rows`
// tokens; bos/eos are tok's. nullopt with `why` when it cannot be written; `*byte_level` says
// whether the tokenizer is byte-level BPE at all (when false, `why` is not about
// this form). Notes on what llama.cpp will do differently go to `notes`. Throws
// mlar::Error naming `source` when the tokenizer has more tokens than `rows`.
std::optional<GgufBpeVocab> gguf_bpe_vocab(const Tokenizer& tok, const std::filesystem::path& dir, int64_t rows,
                                           const std::string& source, std::string* why, bool* byte_level,
                                           std::vector<std::string>* notes);

// Sets the tokenizer.ggml.* keys of `v`.
void set_gguf_bpe_tokenizer(GgufWriter& w, const GgufBpeVocab& v);

// The tokenizer of a file whose tokenizer.ggml.model is "gpt2" (from this project's
// export or llama.cpp's converter), rebuilt as an HF byte-level BPE tokenizer
// (kind() "hf-bpe"; save_hf writes its tokenizer.json); nullptr for any other model.
// Throws mlar::Error naming the file and the key for malformed metadata: token_type
// or a special id that does not fit the tokens, merges of missing tokens, duplicate
// or empty tokens, an unknown tokenizer.ggml.pre.
std::shared_ptr<const Tokenizer> read_gguf_bpe_tokenizer(const GgufFile& f);

}  // namespace mlar
