#include <cstdio>

#include <fmt/format.h>

#include "command.h"
#include "io/deepseek_export.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace mlar::cli {

namespace {

constexpr const char* kExportHelp =
    "Export an MLA model in the DeepSeek layout (MLA.md §5) for serving engines:\n"
    "  --format deepseek-v3  HF directory for transformers' DeepseekV3ForCausalLM (vLLM, SGLang): config.json\n"
    "                        (model_type deepseek_v3, all layers dense), safetensors, tokenizer files\n"
    "  --format gguf         GGUF file of architecture deepseek2 (llama.cpp), tokenizer as GGUF metadata: model\n"
    "                        llama for SentencePiece-style, gpt2 for byte-level BPE with a pre-tokenizer llama.cpp\n"
    "                        names (llama-bpe, qwen2, tekken, gpt-2); else no_vocab, with a note saying why\n"
    "Reloading the output (any command taking MODEL) gives the model's logits.\n"
    "Exact rewrites, each reported: softmax scale folded into the query rows (DeepSeek uses 1/sqrt(d_n + d_r));\n"
    "explicit rope frequencies written as the theta / linear factor that give them; half-layout rope rows\n"
    "interleaved; a one-head W_qr folded into the query; d_n = 0 padded to 1 with zeros; deepseek-v3:\n"
    "rms_norm_eps written as 1e-6 with the residual stream rescaled (transformers' latent norms use 1e-6).\n"
    "Refused, with the reason: GQA models; stored absorption (export before --absorb); more than one rope head\n"
    "(--rope-mode repeat); per-layer latent ranks; no latent norm (loaders always apply kv_a_layernorm: convert\n"
    "with --latent-norm calibrated); a query bias (convert --query-bias fold removes it, a measured approximation\n"
    "named in a note here); rope frequencies no standard RoPE head gives (partial RoPE);\n"
    "gguf: latent / rope-key biases and RoPE scaling.";

void print_notes(const std::vector<std::string>& notes, std::FILE* to = stdout) {
  for (const auto& n : notes) fmt::print(to, "  note: {}\n", n);
}

}  // namespace

void export_after_convert(Model m, const std::string& format, const std::string& out, const std::string& dtype,
                          bool force, bool to_stderr) {
  DeepseekExportOptions o;
  o.dtype = dtype;
  const auto notes = export_deepseek(std::move(m), parse_deepseek_format(format), out, o, force);
  std::FILE* to = to_stderr ? stderr : stdout;
  fmt::print(to, "exported {} ({})\n", out, format);
  print_notes(notes, to);
}

void register_export(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string format, out, dtype;
    uint64_t max_shard_bytes = 5ull << 30;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("export", kExportHelp);
  args->model.add(cmd);
  cmd->add_option("--format", args->format, "deepseek-v3 (HF directory) or gguf (llama.cpp deepseek2)")
      ->required()
      ->check(CLI::IsMember({"deepseek-v3", "gguf"}));
  cmd->add_option("--out", args->out, "output directory (deepseek-v3) or .gguf file (must not exist unless --force)")
      ->required();
  add_dtype_option(cmd, args->dtype, "dtype on disk (gguf: vectors stay F32)");
  add_shard_option(cmd, args->max_shard_bytes);
  cmd->add_flag("--force", args->force, "replace an existing output");
  cmd->callback([args] {
    const DeepseekFormat f = parse_deepseek_format(args->format);
    check_output_free(args->out, args->force);
    Model m = args->model.load();
    DeepseekExportOptions o;
    o.dtype = out_dtype(args->dtype, m);
    o.max_shard_bytes = args->max_shard_bytes;
    const auto notes = export_deepseek(std::move(m), f, args->out, o, args->force);
    fmt::print("wrote {} ({})\n", args->out, deepseek_format_name(f));
    print_notes(notes);
  });
}

}  // namespace mlar::cli
