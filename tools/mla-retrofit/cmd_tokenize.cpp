#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "tokenizer/load.h"
#include "util/utf8.h"

namespace mlar::cli {

void register_tokenize(CLI::App& app) {
  struct Args {
    std::string model, tokenizer, text_file, text;
    bool bos = false, json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text.");
  cmd->add_option("MODEL", args->model,
                  "model with a tokenizer (HF directory, .gguf) or a tokenizer file (tok*.bin, .model, tokenizer.json)")
      ->required();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer file overriding the model's");
  auto* tf = cmd->add_option("--text", args->text_file, "UTF-8 text file to tokenize");
  cmd->add_option("--string", args->text, "text given inline")->excludes(tf);
  cmd->add_flag("--bos", args->bos, "prepend the BOS id");
  cmd->add_flag("--json", args->json, "print {\"ids\": [...], \"count\": N} as JSON");
  cmd->callback([args] {
    std::shared_ptr<const Tokenizer> tok;
    if (!args->tokenizer.empty()) {
      tok = load_tokenizer(args->tokenizer);
    } else {
      // A model that carries a tokenizer (HF directory, .gguf), or a tokenizer file.
      if (std::filesystem::is_directory(args->model) || args->model.ends_with(".gguf")) {
        Model m = load_model(args->model);
        require_tokenizer(m);
        tok = m.tokenizer;
      } else {
        tok = load_tokenizer(args->model);
      }
    }
    std::string text = args->text_file.empty() ? args->text : read_utf8_file(args->text_file);
    std::vector<int32_t> ids;
    if (args->bos) ids.push_back(tok->bos_id());
    auto body = tok->encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    if (args->json) {
      fmt::print("{}\n", nlohmann::json{{"count", ids.size()}, {"ids", ids}}.dump());
    } else {
      fmt::print("{}\n", fmt::join(ids, " "));
    }
  });
}

}  // namespace mlar::cli
