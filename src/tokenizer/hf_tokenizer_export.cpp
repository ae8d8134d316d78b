// save_hf for tokenizers loaded from an HF tokenizer.json: the files go back as they were.
#include "tokenizer/hf_tokenizer_export.h"

#include <nlohmann/json.hpp>

#include "util/atomic_output.h"

namespace mlar::tok {

void save_hf_tokenizer_files(const HfTokenizerFiles& files, const std::string& bos, const std::string& eos,
                             const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  write_text_file(dir / "tokenizer.json", files.tokenizer_json);
  if (!files.tokenizer_config_json.empty()) {
    write_text_file(dir / "tokenizer_config.json", files.tokenizer_config_json);
  } else {
    nlohmann::ordered_json c{{"tokenizer_class", "PreTrainedTokenizerFast"},
                             {"bos_token", bos.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(bos)},
                             {"eos_token", eos.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(eos)},
                             {"clean_up_tokenization_spaces", false}};
    write_text_file(dir / "tokenizer_config.json", c.dump(2) + "\n");
  }
  if (!files.special_tokens_map_json.empty())
    write_text_file(dir / "special_tokens_map.json", files.special_tokens_map_json);
}

}  // namespace mlar::tok
