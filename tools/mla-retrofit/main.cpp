// mla-retrofit: read GQA checkpoints, run them, and (in later commands) retrofit MLA.
#include <cstdio>
#include <exception>

#include <fmt/format.h>

#include "command.h"
#include "util/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "mla-retrofit: retrofit Multi-head Latent Attention into GQA language models.\n"
      "Reads HF directories (config.json + safetensors), GGUF (llama) and llama2.c .bin checkpoints."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mla-retrofit 0.1.0");
  mlar::cli::register_import(app);
  mlar::cli::register_tokenize(app);
  mlar::cli::register_inspect(app);
  mlar::cli::register_generate(app);
  mlar::cli::register_eval(app);
  mlar::cli::register_convert(app);
  mlar::cli::register_compare(app);
  mlar::cli::register_export(app);
  mlar::cli::register_logits(app);
  mlar::cli::register_finetune(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const mlar::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
