#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "model/kv_footprint.h"

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

}  // namespace

void register_inspect(CLI::App& app) {
  struct Args {
    ModelArgs model;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("inspect", "Show a model's architecture, parameter count and KV-cache size.");
  args->model.add(cmd);
  cmd->add_flag("--json", args->json, "print the report as JSON");
  cmd->callback([args] {
    Model m = args->model.load();
    const ModelConfig& c = m.config;
    const int64_t params = parameter_count(m.weights);
    KvFootprint f32 = gqa_kv_footprint(c, 4), b16 = gqa_kv_footprint(c, 2);
    if (args->json) {
      nlohmann::json j = {{"source", m.source},
                          {"format", m.format},
                          {"attention", "gqa"},
                          {"config", config_to_json(c)},
                          {"parameters", params},
                          {"tokenizer", m.tokenizer ? m.tokenizer->kind() : "none"},
                          {"kv_cache", {{"f32", kv_footprint_json(f32)}, {"bf16", kv_footprint_json(b16)}}}};
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("model        {} ({})\n", m.source, m.format);
    fmt::print("architecture {} decoder, attention GQA\n", c.arch);
    fmt::print("layers       {}\n", c.num_layers);
    fmt::print("hidden       {} (intermediate {})\n", c.hidden_size, c.intermediate_size);
    fmt::print("heads        {} query, {} kv (group {}), head size {}\n", c.num_heads, c.num_kv_heads,
               c.group_size(), c.head_dim);
    fmt::print("vocab        {} ({} output head)\n", c.vocab_size, c.tie_word_embeddings ? "tied" : "separate");
    fmt::print("rope         theta {}, {} layout, scaling {}\n", c.rope_theta, rope_layout_name(c.rope_layout),
               rope_scaling_name(c.rope_scaling.type));
    fmt::print("norm eps     {:g}\n", c.rms_norm_eps);
    if (c.attention_bias) fmt::print("biases       q, k, v\n");
    fmt::print("max context  {}\n", c.max_position_embeddings);
    fmt::print("parameters   {} ({:.3f} M)\n", params, params / 1e6);
    fmt::print("tokenizer    {}\n", m.tokenizer ? m.tokenizer->kind() : "none (pass --tokenizer)");
    fmt::print("KV cache     {} values per token per layer (2 x {} kv heads x {})\n", f32.values_per_token_layer,
               c.num_kv_heads, c.head_dim);
    for (const KvFootprint* f : {&f32, &b16})
      fmt::print("  {:<4}       {} per token per layer, {} per token, {} at {} tokens\n",
                 f->bytes_per_value == 4 ? "f32" : "bf16", human_bytes(f->bytes_per_token_layer()),
                 human_bytes(f->bytes_per_token()), human_bytes(f->bytes_at_max_context()), f->max_context);
  });
}

}  // namespace mlar::cli
