// Internal: what save_hf writes back for a tokenizer loaded from an HF tokenizer.json.
#pragma once
#include <filesystem>
#include <string>

namespace mlar::tok {

// The files an HF tokenizer was loaded from, as save_hf writes them back.
struct HfTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;    // empty when there was none
  std::string special_tokens_map_json;  // empty when there was none
};

// Writes tokenizer.json and the configs into `dir`; writes a minimal
// tokenizer_config.json (PreTrainedTokenizerFast) when the original had none.
void save_hf_tokenizer_files(const HfTokenizerFiles& files, const std::string& bos, const std::string& eos,
                             const std::filesystem::path& dir);

}  // namespace mlar::tok
