// Internal: the SentencePiece-BPE tokenizer over an SpmVocab, shared by the llama2.c,
// SentencePiece (.model) and GGUF paths.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/load.h"

namespace mlar::tok {

// Piece types, numbered as in sentencepiece_model.proto and GGUF.
enum SpmType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Checks sizes and ids, fills in `types` when empty (unk_id unknown, bos/eos control,
// "<0xAB>" byte, others normal) and resolves remove_extra_whitespaces. Throws
// mlar::Error naming `source`.
void complete_spm_vocab(SpmVocab& v, const std::string& source);

// The byte a "<0xAB>" piece stands for, or -1.
int byte_piece_value(std::string_view piece);

// The tokenizer. `kind` is what kind() reports; `model_bytes`, when not empty, is a
// SentencePiece .model that save_hf copies as tokenizer.model.
std::shared_ptr<const Tokenizer> make_spm_tokenizer(SpmVocab vocab, const std::string& source, std::string kind,
                                                    std::string model_bytes = {});

}  // namespace mlar::tok
