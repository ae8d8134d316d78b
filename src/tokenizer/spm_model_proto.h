// Internal: the few fields of a SentencePiece ModelProto (*.model) the toolkit needs,
// read straight from the protobuf wire format.
#pragma once
#include <string>
#include <string_view>

#include "tokenizer/load.h"

namespace mlar::tok {

struct SpmModelInfo {
  SpmVocab vocab;          // pieces, scores, types, ids, add_dummy_prefix, remove_extra_whitespaces
  int32_t model_type = 1;  // 1 unigram, 2 BPE, 3 word, 4 char
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  bool escape_whitespaces = true;
  std::string normalizer_name;
  size_t charsmap_size = 0;  // non-zero: a precompiled normalization map is in use
};

// Throws mlar::Error naming `source` on a malformed message.
SpmModelInfo parse_spm_model(std::string_view bytes, const std::string& source);

}  // namespace mlar::tok
