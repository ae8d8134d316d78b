#include <omp.h>

#include "command.h"
#include "util/error.h"

namespace mlar::cli {

void ModelArgs::add(CLI::App* cmd) {
  cmd->add_option("MODEL", path, "HF model directory, .gguf file, or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", tokenizer,
                  "tokenizer file (tok*.bin, SentencePiece .model, tokenizer.json); needed for a llama2.c .bin");
}

Model ModelArgs::load() const { return load_model(path, LoadOptions{tokenizer}); }

const Tokenizer& require_tokenizer(const Model& m) {
  if (!m.tokenizer)
    fail("{}: model has no tokenizer; pass --tokenizer FILE (e.g. tok512.bin or tokenizer.model)", m.source);
  return *m.tokenizer;
}

void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

}  // namespace mlar::cli
