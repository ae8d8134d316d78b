// TEMPORARY placeholder so dependants link while the tokenizer module is written;
// replaced by the real factory.
#include "tokenizer/load.h"

#include "util/error.h"

namespace mlar {

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path) {
  fail("{}: tokenizers are not implemented yet", path);
}

std::shared_ptr<const Tokenizer> make_spm_vocab_tokenizer(SpmVocab, const std::string& source) {
  fail("{}: tokenizers are not implemented yet", source);
}

}  // namespace mlar
