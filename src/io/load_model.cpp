#include "io/load_model.h"

#include <filesystem>

#include "io/deepseek_read.h"
#include "io/gguf_model.h"
#include "io/hf_model.h"
#include "io/llama2c.h"
#include "io/mla_model.h"
#include "tokenizer/load.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {

ModelFormat detect_model_format(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("{}: no such file or directory", path);
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(fs::path(path) / "config.json"))
      fail("{}: directory has no config.json (expected a Hugging Face model directory)", path);
    return ModelFormat::HfDir;
  }
  std::string ext = fs::path(path).extension().string();
  if (ext == ".gguf") return ModelFormat::Gguf;
  if (ext == ".bin") return ModelFormat::Llama2c;
  fail("{}: unknown model format (expected an HF directory, a .gguf or a llama2.c .bin)", path);
}

Model load_model(const std::string& path, const LoadOptions& opts) {
  Model m;
  switch (detect_model_format(path)) {
    case ModelFormat::HfDir:
      m = is_deepseek_v3_dir(path) ? read_deepseek_v3_model(path)
          : is_mla_model_dir(path) ? read_mla_model(path)
                                   : read_hf_model(path);
      break;
    case ModelFormat::Gguf: m = is_gguf_deepseek2(path) ? read_gguf_deepseek2_model(path) : read_gguf_model(path); break;
    case ModelFormat::Llama2c: m = read_llama2c(path); break;
  }
  m.file_rope_layout = m.config.rope_layout;
  if (!m.config.mla) convert_rope_layout(m.config, m.weights, RopeLayout::Half);
  if (!opts.tokenizer.empty()) m.tokenizer = load_tokenizer(opts.tokenizer);
  if (m.tokenizer && m.tokenizer->vocab_size() > m.config.vocab_size)
    fail("{}: tokenizer has {} tokens but the model's vocabulary is {}",
         opts.tokenizer.empty() ? path : opts.tokenizer, m.tokenizer->vocab_size(), m.config.vocab_size);
  return m;
}

}  // namespace mlar
