// Internal pieces of the GGUF deepseek2 export: the tokenizer as GGUF metadata.
//
// GGUF carries a tokenizer as tokenizer.ggml.* metadata. A SentencePiece-style BPE
// vocabulary (llama2.c tok*.bin, a SentencePiece BPE .model, the Llama-2 form of an
// HF tokenizer.json: BPE with byte fallback over "▁"-escaped text) is written as
// tokenizer.ggml.model "llama" with tokens, scores, token types, special ids and
// add_space_prefix / remove_extra_whitespaces, which llama.cpp's SPM tokenizer and
// this project's GGUF reader both read. From a tokenizer.json the scores are
// rebuilt from the merge ranks (piece made by merge k scores -k), which gives the
// same merge order. Byte-level BPE (as Llama 3 and Qwen2 use) is written as
// tokenizer.ggml.model "gpt2" (io/gguf_bpe_vocab.h). Other tokenizers (a unigram
// .model, a .model with a normalization map, byte-level BPE whose pre-tokenizer
// llama.cpp has no name for) are not written: the file gets tokenizer.ggml.model
// "no_vocab" (llama.cpp then runs on token ids) and the export says why.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "io/gguf_writer.h"
#include "tokenizer/load.h"

namespace mlar {

// The vocabulary of `tok` for tokenizer.ggml.model "llama" (complete: types, scores,
// ids), or nullopt with `why` saying what the tokenizer is. `scratch` is an existing
// empty directory the tokenizer's HF files are written into.
std::optional<SpmVocab> gguf_spm_vocab(const Tokenizer& tok, const std::filesystem::path& scratch, std::string* why);

// Sets tokenizer.ggml.* for `v`, padded with unused "[PADn]" tokens up to
// `vocab_size` rows (llama.cpp sizes the vocabulary from the token list).
void set_gguf_spm_tokenizer(GgufWriter& w, const SpmVocab& v, int64_t vocab_size);

}  // namespace mlar
