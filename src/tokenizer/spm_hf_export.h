// Internal: HF files (Llama-2 form tokenizer.json, tokenizer_config.json,
// special_tokens_map.json) for a SentencePiece-BPE vocabulary.
#pragma once
#include <filesystem>
#include <string>

#include "tokenizer/load.h"

namespace mlar::tok {

// `v` must be complete (complete_spm_vocab). When `model_bytes` is not empty it is
// written as tokenizer.model too. Without `with_tokenizer_json` only the configs (and
// tokenizer.model) are written, for models the Llama form cannot express.
void save_spm_hf(const SpmVocab& v, const std::filesystem::path& dir, const std::string& model_bytes,
                 bool with_tokenizer_json = true);

// The merges transformers' SentencePiece extractor derives from a scored vocabulary:
// every split of a piece into two pieces of the vocabulary, ordered by the merged
// piece's score (highest first; ties in vocabulary order, then by the ids of the parts).
std::vector<std::pair<std::string, std::string>> spm_merges(const SpmVocab& v);

}  // namespace mlar::tok
