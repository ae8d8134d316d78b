#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "convert/target.h"
#include "model/kv_footprint.h"
#include "util/error.h"

namespace mlar::cli {
namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.2f} {}", b, units[u]);
}

struct Layout {
  std::string name;
  KvFootprint chosen, f32, bf16;  // chosen: values stored as --kv-dtype
};

Layout layout_of(std::string name, const ModelConfig& c, DType kv_dtype) {
  return {std::move(name), kv_footprint(c, kv_dtype), kv_footprint(c, DType::F32), kv_footprint(c, DType::BF16)};
}

// `c` rewritten as MLA with the given cache shape (for what-if accounting only).
ModelConfig with_mla(const ModelConfig& c, RopeMode mode, int64_t r, int64_t n_r, int64_t d_r) {
  ModelConfig m = c;
  MlaConfig mla;
  mla.rope_mode = mode;
  mla.kv_lora_rank = r;
  mla.num_rope_heads = n_r;
  mla.qk_rope_head_dim = d_r;
  m.mla = mla;
  return m;
}

}  // namespace

void register_inspect(CLI::App& app) {
  struct Args {
    ModelArgs model;
    int64_t kv_lora_rank = 0, qk_rope_dim = 0;
    bool json = false;
    std::string kv_dtype = "bf16";
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "inspect",
      "Show a model's architecture, parameter count and KV-cache size (per token per layer, per token, and at the\n"
      "maximum context). For a GQA model it also shows what the exact MLA retrofit (--rope-mode repeat) and a\n"
      "DeepSeek layout (one shared rope key of --qk-rope-dim values plus a latent of --kv-lora-rank) would cache.");
  args->model.add(cmd);
  cmd->add_option("--kv-lora-rank", args->kv_lora_rank, "latent width r of a DeepSeek layout to account for")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--qk-rope-dim", args->qk_rope_dim, "rope key width d_r of that layout (default: the head size)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", args->json, "print the report as JSON");
  add_kv_dtype_option(cmd, args->kv_dtype);
  cmd->callback([args] {
    const DType kv_type = kv_dtype_of(args->kv_dtype);
    Model m = args->model.load();
    const ModelConfig& c = m.config;
    const int64_t params = parameter_count(m.weights);
    std::vector<Layout> layouts{layout_of("as loaded", c, kv_type)};
    if (!c.mla) {
      const int64_t kv_dim = c.kv_dim();
      layouts.push_back(layout_of("mla repeat (exact)", with_mla(c, RopeMode::Repeat, kv_dim, c.num_kv_heads, c.head_dim), kv_type));
      if (args->kv_lora_rank > 0) {
        int64_t dr = args->qk_rope_dim > 0 ? args->qk_rope_dim : c.head_dim;
        layouts.push_back(layout_of(fmt::format("deepseek r={} d_r={}", args->kv_lora_rank, dr),
                                    with_mla(c, RopeMode::Extend, args->kv_lora_rank, 1, dr), kv_type));
      }
    } else if (args->kv_lora_rank > 0) {
      fail("{}: the model is already MLA; --kv-lora-rank accounts for GQA models only", m.source);
    }
    std::vector<TargetFit> targets;
    if (!c.mla)
      for (const TargetProfile& p : serve_targets()) targets.push_back(fit_target(c, p.target));
    const double base = static_cast<double>(layouts[0].chosen.values_per_token);
    if (args->json) {
      nlohmann::json kv = nlohmann::json::array();
      for (const auto& l : layouts)
        kv.push_back({{"layout", l.name},
                      {"fraction_of_loaded", l.f32.values_per_token / base},
                      {"kv_dtype", kv_footprint_json(l.chosen)},
                      {"f32", kv_footprint_json(l.f32)},
                      {"bf16", kv_footprint_json(l.bf16)}});
      nlohmann::json j = {{"source", m.source},
                          {"format", m.format},
                          {"attention", c.mla ? "mla" : "gqa"},
                          {"config", config_to_json(c)},
                          {"parameters", params},
                          {"tokenizer", m.tokenizer ? m.tokenizer->kind() : "none"},
                          {"kv_dtype", dtype_flag_name(kv_type)},
                          {"kv_cache",
                           {{"kv_dtype", kv_footprint_json(layouts[0].chosen)},
                            {"f32", kv_footprint_json(layouts[0].f32)},
                            {"bf16", kv_footprint_json(layouts[0].bf16)}}},
                          {"kv_layouts", kv}};
      if (!c.mla) {
        nlohmann::json tj = nlohmann::json::array();
        for (const TargetFit& f : targets) tj.push_back(target_fit_json(f));
        j["serve_targets"] = tj;
      }
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("model        {} ({})\n", m.source, m.format);
    fmt::print("architecture {} decoder, attention {}\n", c.arch, c.mla ? "MLA" : "GQA");
    fmt::print("layers       {}\n", c.num_layers);
    fmt::print("hidden       {} (intermediate {})\n", c.hidden_size, c.intermediate_size);
    fmt::print("heads        {} query, {} kv (group {}), head size {}\n", c.num_heads, c.num_kv_heads,
               c.group_size(), c.head_dim);
    if (c.mla) {
      const MlaConfig& a = *c.mla;
      fmt::print("mla          rope mode {}, latent r {}{}, {} rope head(s) of {}, nope {}, v {}, q_lora {}{}{}\n",
                 rope_mode_name(a.rope_mode), a.kv_lora_rank, a.layer_kv_lora_rank.empty() ? "" : " (max; per layer)",
                 a.num_rope_heads, a.qk_rope_head_dim, a.qk_nope_head_dim, a.v_head_dim, a.q_lora_rank,
                 a.latent_norm ? ", latent norm" : "", a.absorbed ? ", absorbed" : "");
      if (a.qk_norm)
        fmt::print("q/k norms    RMSNorm q_norm [{}] on each head's rope-query input, k_norm [{}] on each of the {} "
                   "rope keys, before RoPE\n",
                   a.q_rope_in_dim, a.qk_rope_head_dim, a.num_rope_heads);
      if (a.qk_scale_dim > 0)
        fmt::print("q/k norms    as score scales (Qwen3 extend, --qk-norm cached): each query head times its 1/rms "
                   "over {} values, {} key scales cached per token\n",
                   a.qk_scale_dim, a.qk_scale_kv_heads);
    } else if (c.qk_norm) {
      fmt::print("q/k norms    RMSNorm q_norm [{}] on each query head, k_norm [{}] on each kv head, before RoPE\n",
                 c.head_dim, c.head_dim);
    }
    fmt::print("vocab        {} ({} output head)\n", c.vocab_size, c.tie_word_embeddings ? "tied" : "separate");
    fmt::print("rope         theta {}, scaling {}, {} layout in the file\n", c.rope_theta,
               rope_scaling_name(c.rope_scaling.type), rope_layout_name(m.file_rope_layout));
    fmt::print("norm eps     {:g}\n", c.rms_norm_eps);
    if (c.attention_bias) fmt::print("biases       q, k, v\n");
    fmt::print("max context  {}\n", c.max_position_embeddings);
    fmt::print("parameters   {} ({:.3f} M)\n", params, params / 1e6);
    fmt::print("tokenizer    {}\n", m.tokenizer ? m.tokenizer->kind() : "none (pass --tokenizer)");
    const std::string dn = dtype_flag_name(kv_type);
    fmt::print("KV cache     {:<26} {:>10} {:>14} {:>12} {:>14} {:>7}\n", "layout", "values/tok", dn + "/tok/layer",
               dn + "/token", fmt::format("{} @ {}", dn, c.max_position_embeddings), "vs GQA");
    for (const auto& l : layouts)
      fmt::print("             {:<26} {:>10} {:>14} {:>12} {:>14} {:>6.1f}%\n", l.name, l.chosen.values_per_token,
                 human_bytes(l.chosen.bytes_per_token_layer()), human_bytes(l.chosen.bytes_per_token()),
                 human_bytes(l.chosen.bytes_at_max_context()), 100.0 * l.chosen.values_per_token / base);
    fmt::print("             (values stored as {}, --kv-dtype; f32 caches are {} these sizes)\n", dn,
               kv_type == DType::F32 ? "the same as" : "twice");
    if (!targets.empty()) {
      fmt::print("targets      convert --rope-mode extend --target T (docs/serving.md)\n");
      for (const TargetFit& f : targets) {
        const char* name = target_profile(f.target).name;
        if (!f.fits)
          fmt::print("             {:<13} does not fit: {}\n", name, f.why.substr(0, f.why.find("; nearest")));
        else if (f.shape.kv_lora_rank == 0)
          fmt::print("             {:<13} any uniform r + d_r (give --kv-budget)\n", name);
        else
          fmt::print("             {:<13} r {} + d_r {} = {} values/tok/layer, {:.1f}% of the GQA cache\n", name,
                     f.shape.kv_lora_rank, f.shape.qk_rope_dim, f.shape.kv_lora_rank + f.shape.qk_rope_dim,
                     100.0 * f.kv_fraction);
      }
    }
  });
}

}  // namespace mlar::cli
