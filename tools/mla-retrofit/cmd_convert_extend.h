// The `--rope-mode extend` part of `mla-retrofit convert` (convert/extend.h): its
// options, registered on the convert subcommand, and the conversion they drive.
#pragma once
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "model/model.h"

namespace mlar::cli {

struct ExtendArgs;

// Adds the extend options to `cmd`; the returned object holds their values.
std::shared_ptr<ExtendArgs> register_extend_options(CLI::App* cmd);

// Before any work: with --rope-mode extend, --calib is required and the repeat-only
// latent layout options (layout_given) are refused; with another mode, every
// extend-only option is refused.
void check_extend_args(const ExtendArgs& a, const std::string& rope_mode, bool layout_given);

// Reads the calibration (and evaluation) text with the model's tokenizer, converts
// (convert_extend), optionally absorbs, and writes --report. Progress and the stage
// perplexities go to stderr unless quiet. With --target, or an `export_format` (convert
// --format), the output is made exportable (convert/target.h).
Model run_extend(const Model& gqa, const ExtendArgs& a, bool quiet, bool absorb, const std::string& export_format);

}  // namespace mlar::cli
