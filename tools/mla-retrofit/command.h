// How subcommands plug into the `mla-retrofit` CLI: each cmd_*.cpp registers one
// subcommand on the app and sets its callback. Errors are thrown as mlar::Error and
// reported by main() as one line on stderr with exit status 1.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "io/load_model.h"
#include "backend/open_sequence.h"
#include "runtime/mla_attention.h"
#include "tensor/device.h"
#include "tensor/dtype.h"

namespace mlar::cli {

void register_import(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_generate(CLI::App& app);
void register_eval(CLI::App& app);
void register_inspect(CLI::App& app);
void register_convert(CLI::App& app);
void register_compare(CLI::App& app);
void register_export(CLI::App& app);  // cmd_export.cpp
void register_logits(CLI::App& app);
void register_finetune(CLI::App& app);

// MODEL positional + --tokenizer, shared by every command that loads a model.
struct ModelArgs {
  std::string path;
  std::string tokenizer;
  void add(CLI::App* cmd);
  Model load() const;
};

// The model's tokenizer, or a clear error telling the user to pass --tokenizer.
const Tokenizer& require_tokenizer(const Model& m);

// --dtype auto|F32|F16|BF16 for an output's weights; auto (the default) keeps the
// source's weight dtype (out_dtype resolves it).
void add_dtype_option(CLI::App* cmd, std::string& dtype, const std::string& what);
std::string out_dtype(const std::string& flag, const Model& source);

// --max-shard-bytes N: safetensors outputs are split into shards of at most N bytes
// (default 5 GiB; a larger tensor gets a shard of its own).
void add_shard_option(CLI::App* cmd, uint64_t& max_shard_bytes);

// Sets the number of compute threads (0 = all cores).
void set_threads(int threads);

// --attn auto|naive|absorbed: how the attention of an MLA model is evaluated.
void add_attn_option(CLI::App* cmd, std::string& attn);
// The evaluation --attn names for model m; naive/absorbed on a GQA model is refused
// with a message saying why.
MlaEval attn_eval(const std::string& attn, const Model& m);

// --kv-dtype f32|bf16|f16 (default bf16): how the KV cache of a decoding command
// stores values. kv_dtype_of parses it (mlar::Error on anything else).
void add_kv_dtype_option(CLI::App* cmd, std::string& kv_dtype);
DType kv_dtype_of(const std::string& kv_dtype);

// --device cpu|cuda (default cpu): where a running command computes (cuda needs a
// build with -DMLAR_CUDA=ON and a GPU). device_of parses it.
void add_device_option(CLI::App* cmd, std::string& device);
Device device_of(const std::string& device);

// `convert --format F --export-out PATH`: exports the converted model (cmd_export.cpp);
// what it prints goes to stderr when `to_stderr` (convert --json keeps stdout JSON).
void export_after_convert(Model m, const std::string& format, const std::string& out, const std::string& dtype,
                          bool force, bool to_stderr);

}  // namespace mlar::cli
