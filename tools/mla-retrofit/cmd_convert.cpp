#include <filesystem>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cmd_convert_extend.h"
#include "command.h"
#include "convert/convert.h"
#include "io/mla_model.h"
#include "model/kv_footprint.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace mlar::cli {
namespace {

// What the summary reports of one model.
struct ModelStats {
  int64_t params = 0;
  int64_t kv_bytes_per_token = 0;  // float32 cache, all layers
};

ModelStats stats_of(const Model& m) { return {parameter_count(m.weights), kv_footprint(m.config, DType::F32).bytes_per_token()}; }

std::string attention_desc(const ModelConfig& c) {
  if (!c.mla) return fmt::format("GQA {} query heads, {} kv heads x {}", c.num_heads, c.num_kv_heads, c.head_dim);
  const MlaConfig& m = *c.mla;
  return fmt::format("MLA ({}{}): latent r = {}, {} rope heads x {}, {} query heads", rope_mode_name(m.rope_mode),
                     m.absorbed ? ", absorbed" : "", m.kv_lora_rank, m.num_rope_heads, m.qk_rope_head_dim,
                     c.num_heads);
}

}  // namespace

void register_convert(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string out, rope_mode, dtype;
    bool absorb = false, force = false, json = false, quiet = false;
    int64_t num_kv_heads = 0, head_dim = 0;
    uint64_t max_shard_bytes = 5ull << 30;
    int threads = 0;
    std::string export_format, export_out;  // --format / --export-out (cmd_export.cpp)
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "convert",
      "Convert a GQA model to Multi-head Latent Attention and write it as an MLA directory (docs/mla-format.md).\n"
      "--rope-mode repeat is the exact retrofit (MLA.md §3): the rope keys are the GQA keys (n_kv rope heads of\n"
      "the source head size, roped as before), the latent is the GQA value, each query head reads its group\n"
      "through up-projections that start as selections; the logits are the source's. --absorb stores the\n"
      "up-projections folded into the query and output projections (more parameters, no up-projection at\n"
      "inference).");
  args->model.add(cmd);
  cmd->add_option("--out", args->out, "output directory (must not exist unless --force)")->required();
  cmd->add_option("--rope-mode", args->rope_mode,
                  "repeat (exact) or extend (compressed DeepSeek layout, calibrated: see the extend options)")
      ->required();
  cmd->add_flag("--absorb", args->absorb, "store the absorbed form (W_uk, W_qr into W_q; W_uv into W_o)");
  cmd->add_option("--num-kv-heads", args->num_kv_heads,
                  "latent layout: heads (default: the source's; only the source's split is exact)");
  cmd->add_option("--head-dim", args->head_dim, "latent layout: head size (default: the source's)");
  add_dtype_option(cmd, args->dtype, "dtype on disk");
  add_shard_option(cmd, args->max_shard_bytes);
  cmd->add_flag("--force", args->force, "replace an existing output");
  cmd->add_option("--threads", args->threads, "compute threads (0 = all cores)");
  cmd->add_flag("--json", args->json, "print the summary as JSON");
  cmd->add_flag("--quiet,-q", args->quiet, "no progress on stderr");
  auto* exp_fmt = cmd->add_option("--format", args->export_format,
                                  "also export the converted model: deepseek-v3 or gguf (as `export`; see its --help)")
                      ->check(CLI::IsMember({"deepseek-v3", "gguf"}));
  cmd->add_option("--export-out", args->export_out, "where --format writes (a directory, or a .gguf file)")
      ->needs(exp_fmt);
  exp_fmt->needs("--export-out");
  auto extend = register_extend_options(cmd);  // --rope-mode extend (cmd_convert_extend.cpp)
  cmd->callback([args, extend] {
    set_threads(args->threads);
    const bool is_extend = parse_rope_mode(args->rope_mode) == RopeMode::Extend;  // refuse a bad mode before any work
    check_extend_args(*extend, args->rope_mode, args->num_kv_heads != 0 || args->head_dim != 0);
    check_output_free(args->out, args->force);
    if (!args->export_format.empty()) check_output_free(args->export_out, args->force);
    if (!args->export_format.empty() && !is_extend)
      fail("--format {}: the repeat mode keeps n_kv rope heads and no latent norm, which the DeepSeek formats cannot "
           "express (see `export --help`); use --rope-mode extend",
           args->export_format);
    Model m = args->model.load();
    if (m.config.mla)
      fail("{}: model is already MLA (rope mode {}); convert starts from a GQA model", m.source,
           rope_mode_name(m.config.mla->rope_mode));
    const ModelStats before = stats_of(m);
    const std::string before_desc = attention_desc(m.config);
    const nlohmann::json from = {{"path", std::filesystem::absolute(m.source).lexically_normal().string()},
                                 {"format", m.format},
                                 {"arch", m.config.arch},
                                 {"num_attention_heads", m.config.num_heads},
                                 {"num_key_value_heads", m.config.num_kv_heads},
                                 {"head_dim", m.config.head_dim}};

    ConvertOptions co;
    co.rope_mode = args->rope_mode;
    co.absorb = args->absorb;
    co.num_kv_heads = args->num_kv_heads;
    co.head_dim = args->head_dim;
    const bool progress = !args->quiet, absorb = args->absorb;
    co.progress = [progress, absorb](int64_t done, int64_t total) {
      if (!progress) return;
      fmt::print(stderr, "convert: layer {}/{}\n", done, total);
      if (absorb && done == total) fmt::print(stderr, "convert: absorbing the up-projections\n");
    };
    Model mla = is_extend ? run_extend(m, *extend, args->quiet, args->absorb, args->export_format) : convert_model(std::move(m), co);
    const ModelStats after = stats_of(mla);

    AtomicDir out(args->out, args->force);
    MlaWriteOptions wo;
    const std::string dtype = out_dtype(args->dtype, mla);
    wo.dtype = dtype;
    wo.max_shard_bytes = args->max_shard_bytes;
    wo.converted_from = from;
    write_mla_model(mla, out.tmp_path(), wo);
    out.commit();

    if (args->json) {
      nlohmann::json j = {{"out", args->out},
                          {"source", from},
                          {"mla", mla_config_to_json(*mla.config.mla)},
                          {"kv_bytes_per_token_before", before.kv_bytes_per_token},
                          {"kv_bytes_per_token_after", after.kv_bytes_per_token},
                          {"params_before", before.params},
                          {"params_after", after.params},
                          {"tokenizer", mla.tokenizer ? mla.tokenizer->kind() : "none"}};
      fmt::print("{}\n", j.dump(2));
      if (!args->export_format.empty())
        export_after_convert(std::move(mla), args->export_format, args->export_out, dtype, args->force, true);
      return;
    }
    fmt::print("wrote {}\n", args->out);
    fmt::print("  attention       {}\n               -> {}\n", before_desc, attention_desc(mla.config));
    fmt::print("  KV cache        {} -> {} bytes per token (float32, {} layers)\n", before.kv_bytes_per_token,
               after.kv_bytes_per_token, mla.config.num_layers);
    fmt::print("  parameters      {} -> {}\n", before.params, after.params);
    fmt::print("  tokenizer       {}\n", mla.tokenizer ? mla.tokenizer->kind() : "none (pass --tokenizer)");
    if (!args->export_format.empty())
      export_after_convert(std::move(mla), args->export_format, args->export_out, dtype, args->force, false);
  });
}

}  // namespace mlar::cli
