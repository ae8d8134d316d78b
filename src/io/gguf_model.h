// GGUF (v3) models of architecture `llama`.
#pragma once
#include <optional>
#include <string>

#include "io/gguf.h"
#include "model/model.h"
#include "tokenizer/load.h"

namespace mlar {

struct GgufModelOptions {
  bool tokenizer = true;  // false: leave Model::tokenizer null (weights and config only)
};

// Reads config (from `llama.*` metadata), F32/F16/BF16 tensors (others refused
// with a clear error naming the tensor and its type) and the tokenizer from
// `tokenizer.ggml.*` metadata (model "llama" or "gpt2"; others load without one). q/k rows stay interleaved (rope_layout Interleaved).
// Architectures other than `llama` are refused.
Model read_gguf_model(const std::string& path, const GgufModelOptions& opts = {});

// The SentencePiece-style vocabulary of `tokenizer.ggml.model = "llama"`; nullopt
// when the file has no tokenizer or another kind ("gpt2": read_gguf_bpe_tokenizer
// in io/gguf_bpe_vocab.h).
std::optional<SpmVocab> read_gguf_spm_vocab(const GgufFile& f);

}  // namespace mlar
