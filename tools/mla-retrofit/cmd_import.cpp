#include <fmt/format.h>

#include "command.h"
#include "io/hf_model.h"
#include "util/atomic_output.h"

namespace mlar::cli {

void register_import(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string out, dtype;
    uint64_t max_shard_bytes = 5ull << 30;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "import",
      "Write any supported model as a Hugging Face Llama directory (config.json, model.safetensors, tokenizer "
      "files). q/k rows are permuted from the interleaved to the half RoPE layout, so transformers' "
      "LlamaForCausalLM gives the same logits.");
  args->model.add(cmd);
  cmd->add_option("--out", args->out, "output directory (must not exist unless --force)")->required();
  add_dtype_option(cmd, args->dtype, "dtype on disk");
  add_shard_option(cmd, args->max_shard_bytes);
  cmd->add_flag("--force", args->force, "replace an existing output");
  cmd->callback([args] {
    check_output_free(args->out, args->force);
    Model m = args->model.load();
    AtomicDir out(args->out, args->force);
    HfWriteOptions opts;
    opts.dtype = out_dtype(args->dtype, m);
    opts.max_shard_bytes = args->max_shard_bytes;
    write_hf_llama(m, out.tmp_path(), opts);
    out.commit();
    fmt::print(stderr, "wrote {} ({} layers, {} tokenizer)\n", args->out, m.config.num_layers,
               m.tokenizer ? m.tokenizer->kind() : "no");
  });
}

}  // namespace mlar::cli
