// Writing HF DeepSeek-V3 directories (MLA.md §5) for transformers'
// DeepseekV3ForCausalLM, vLLM and SGLang.
#include <algorithm>
#include <deque>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/deepseek_export.h"
#include "io/hf_model.h"
#include "io/json_file.h"
#include "io/safetensors_stream.h"
#include "io/safetensors_writer.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

// Rows of `parts` stacked ([sum rows, cols]); an empty part stands for `zero_rows` zeros.
Tensor stack_rows(const std::vector<std::pair<const TypedTensor*, int64_t>>& parts, int64_t cols) {
  int64_t rows = 0;
  for (const auto& [t, n] : parts) rows += n;
  Tensor out(cols == 0 ? Shape{rows} : Shape{rows, cols});
  float* dst = out.ptr();
  const int64_t w = cols == 0 ? 1 : cols;
  for (const auto& [t, n] : parts) {
    if (!t->empty()) convert_values(t->data(), t->dtype, dst, DType::F32, t->numel());
    dst += n * w;
  }
  return out;
}

}  // namespace

// config.json of an exported model (c in the DeepSeek layout).
nlohmann::json deepseek_v3_config_json(const ModelConfig& c, const std::string& torch_dtype, const std::string& source) {
  const MlaConfig& a = *c.mla;
  ModelConfig base = c;
  base.mla.reset();
  const nlohmann::json rope = hf_llama_config_json(base)["rope_scaling"];
  return {
      {"architectures", {"DeepseekV3ForCausalLM"}},
      {"model_type", "deepseek_v3"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_heads},  // every head gets its own k_nope / v from the latent
      {"kv_lora_rank", a.kv_lora_rank},
      {"q_lora_rank", a.q_lora_rank > 0 ? nlohmann::json(a.q_lora_rank) : nlohmann::json(nullptr)},
      {"qk_nope_head_dim", a.qk_nope_head_dim},
      {"qk_rope_head_dim", a.qk_rope_head_dim},
      {"v_head_dim", a.v_head_dim},
      // All layers dense: no expert is ever built (first_k_dense_replace = every layer).
      {"first_k_dense_replace", c.num_layers},
      {"n_routed_experts", 0},
      {"n_shared_experts", 0},
      {"num_experts_per_tok", 0},
      {"n_group", 1},
      {"topk_group", 1},
      {"moe_layer_freq", 1},
      {"moe_intermediate_size", c.intermediate_size},
      {"routed_scaling_factor", 1.0},
      {"norm_topk_prob", false},
      {"hidden_act", "silu"},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"rope_scaling", rope},
      {"rope_interleave", true},
      {"attention_bias", c.attention_bias},
      {"attention_dropout", 0.0},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_id},
      {"initializer_range", 0.02},
      {"use_cache", true},
      {"torch_dtype", torch_dtype},
      {"mla_retrofit", {{"exported_from", source}, {"rope_mode", rope_mode_name(a.rope_mode)}}},
  };
}

void write_deepseek_v3(const Model& m, const fs::path& dir, const DeepseekExportOptions& opts) {
  const std::string src = m.source.empty() ? dir.string() : m.source;
  check_deepseek_layout(m.config, DeepseekFormat::HfDeepseekV3, src);
  check_weight_shapes(m.config, m.weights, src);
  write_deepseek_v3_layers(m, [&](int64_t l) { return m.weights.layers[static_cast<size_t>(l)]; }, dir, opts);
}

void write_deepseek_v3_layers(const Model& m, const DeepseekLayerSource& layer, const fs::path& dir,
                              const DeepseekExportOptions& opts) {
  const std::string src = m.source.empty() ? dir.string() : m.source;
  const DType dtype = parse_write_dtype(opts.dtype, dir.string());
  const ModelConfig& c = m.config;
  check_deepseek_layout(c, DeepseekFormat::HfDeepseekV3, src);
  c.validate(src);
  const MlaConfig& a = *c.mla;
  const int64_t D = c.hidden_size, V = c.vocab_size, H = c.num_heads, r = a.kv_lora_rank,
                dr = a.qk_rope_head_dim;
  const int64_t dn = a.qk_nope_head_dim, dv = a.v_head_dim;
  const ModelWeights& w = m.weights;
  if (w.embed.shape != Shape{V, D} || w.final_norm.shape != Shape{D} ||
      (!c.tie_word_embeddings && w.lm_head.shape != Shape{V, D}))
    fail("{}: embedding, final norm or output head do not match the config", src);

  // Tensors go out one at a time (each layer is rewritten, written and dropped).
  SafetensorsShardWriter out(dir, opts.max_shard_bytes);
  auto put = [&](const std::string& name, const TypedTensor& t) {
    out.add(name, dtype, t.shape, t.empty() ? nullptr : t.data(), t.dtype);
  };
  if (opts.embed_scale != 1.0)
    out.add("model.embed_tokens.weight", dtype, w.embed.shape, scaled_chunks(w.embed, opts.embed_scale, dtype));
  else
    put("model.embed_tokens.weight", w.embed);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const LayerWeights L = layer(i);
    check_layer_shapes(c, i, L, src);
    const MlaLayerWeights& x = L.mla;
    const std::string p = fmt::format("model.layers.{}.", i);
    put(p + "input_layernorm.weight", L.attn_norm);
    if (a.q_lora_rank > 0) {
      put(p + "self_attn.q_a_proj.weight", x.wq_a);
      if (c.attention_bias) put(p + "self_attn.q_a_proj.bias", Tensor({a.q_lora_rank}));
      put(p + "self_attn.q_a_layernorm.weight", x.q_a_norm);
      put(p + "self_attn.q_b_proj.weight", x.wq_b);
    } else {
      put(p + "self_attn.q_proj.weight", x.wq);
    }
    // [latent | k_pe] rows.
    put(p + "self_attn.kv_a_proj_with_mqa.weight", stack_rows({{&x.w_dkv, r}, {&x.w_kr, dr}}, D));
    if (c.attention_bias)
      put(p + "self_attn.kv_a_proj_with_mqa.bias", stack_rows({{&x.b_dkv, r}, {&x.b_kr, dr}}, 0));
    put(p + "self_attn.kv_a_layernorm.weight", x.kv_norm);
    // Per head rows [k_nope (d_n) | v (d_v)].
    Tensor kv_b({H * (dn + dv), r});
    for (int64_t h = 0; h < H; ++h) {
      convert_values(x.w_uk.row_bytes(h * dn), x.w_uk.dtype, kv_b.ptr() + h * (dn + dv) * r, DType::F32, dn * r);
      convert_values(x.w_uv.row_bytes(h * dv), x.w_uv.dtype, kv_b.ptr() + (h * (dn + dv) + dn) * r, DType::F32,
                     dv * r);
    }
    put(p + "self_attn.kv_b_proj.weight", kv_b);
    put(p + "self_attn.o_proj.weight", x.wo);
    if (c.attention_bias) put(p + "self_attn.o_proj.bias", Tensor({D}));
    put(p + "post_attention_layernorm.weight", L.ffn_norm);
    put(p + "mlp.gate_proj.weight", L.w_gate);
    put(p + "mlp.up_proj.weight", L.w_up);
    put(p + "mlp.down_proj.weight", L.w_down);
    if (opts.progress) opts.progress(i + 1, c.num_layers);
  }
  put("model.norm.weight", w.final_norm);
  if (!c.tie_word_embeddings) put("lm_head.weight", w.lm_head);
  out.finish();

  write_json_file(dir / "config.json", deepseek_v3_config_json(c, torch_dtype_name(dtype), src));
  write_json_file(dir / "generation_config.json",
                  {{"_from_model_config", true}, {"bos_token_id", c.bos_token_id}, {"eos_token_id", c.eos_token_id}});
  if (m.tokenizer) m.tokenizer->save_hf(dir);
}

}  // namespace mlar
