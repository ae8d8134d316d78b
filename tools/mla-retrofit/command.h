// How subcommands plug into the `mla-retrofit` CLI: each cmd_*.cpp registers one
// subcommand on the app and sets its callback. Errors are thrown as mlar::Error and
// reported by main() as one line on stderr with exit status 1.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "io/load_model.h"

namespace mlar::cli {

void register_import(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_generate(CLI::App& app);
void register_eval(CLI::App& app);
void register_inspect(CLI::App& app);
void register_convert(CLI::App& app);
void register_compare(CLI::App& app);

// MODEL positional + --tokenizer, shared by every command that loads a model.
struct ModelArgs {
  std::string path;
  std::string tokenizer;
  void add(CLI::App* cmd);
  Model load() const;
};

// The model's tokenizer, or a clear error telling the user to pass --tokenizer.
const Tokenizer& require_tokenizer(const Model& m);

// Sets the number of compute threads (0 = all cores).
void set_threads(int threads);

}  // namespace mlar::cli
