// Writing a model as an HF Llama directory.
#include <deque>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/hf_model.h"
#include "io/json_file.h"
#include "io/safetensors_writer.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

void write_hf(const Model& m, const fs::path& dir, const HfWriteOptions& opts, bool as_llama) {
  const std::string where = dir.string();
  const DType dtype = parse_write_dtype(opts.dtype, where);
  ModelConfig c = m.config;
  if (c.mla) fail("{}: model is MLA; write it with the MLA writer, not as an HF {} directory", m.source, c.arch);
  if (as_llama && c.qk_norm)
    fail("{}: the model has per-head q/k RMSNorms (Qwen3 q_norm / k_norm), which LlamaForCausalLM does not "
         "apply; it cannot be written as an HF Llama directory",
         m.source.empty() ? where : m.source);
  if (as_llama) c.arch = "llama";
  // Qwen2 has q/k/v biases without an o_proj bias; Llama's and Qwen3's attention_bias bias all four.
  const bool o_bias = c.attention_bias && (c.arch == "llama" || c.arch == "qwen3");
  const std::string src = m.source.empty() ? where : m.source;
  c.validate(src);
  check_weight_shapes(c, m.weights, src);

  // q/k rows go to the half layout; permuted copies live in `owned` (stable addresses).
  const bool permute = c.rope_layout == RopeLayout::Interleaved;
  c.rope_layout = RopeLayout::Half;
  std::deque<TypedTensor> owned;
  auto qk = [&](const TypedTensor& t) -> const TypedTensor* {
    if (!permute) return &t;
    owned.push_back(permute_rope_rows(t, c.head_dim, true));
    return &owned.back();
  };

  const ModelWeights& w = m.weights;
  std::vector<NamedTensor> ts;
  ts.push_back({"model.embed_tokens.weight", &w.embed});
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& L = w.layers[i];
    const std::string p = fmt::format("model.layers.{}.", i);
    ts.push_back({p + "input_layernorm.weight", &L.attn_norm});
    ts.push_back({p + "self_attn.q_proj.weight", qk(L.wq)});
    ts.push_back({p + "self_attn.k_proj.weight", qk(L.wk)});
    ts.push_back({p + "self_attn.v_proj.weight", &L.wv});
    ts.push_back({p + "self_attn.o_proj.weight", &L.wo});
    if (c.qk_norm) {
      ts.push_back({p + "self_attn.q_norm.weight", qk(L.q_norm)});
      ts.push_back({p + "self_attn.k_norm.weight", qk(L.k_norm)});
    }
    if (c.attention_bias) {
      ts.push_back({p + "self_attn.q_proj.bias", qk(L.bq)});
      ts.push_back({p + "self_attn.k_proj.bias", qk(L.bk)});
      ts.push_back({p + "self_attn.v_proj.bias", &L.bv});
      if (o_bias) {  // Llama's / Qwen3's attention_bias also biases o_proj; the source has none.
        owned.emplace_back(Tensor(Shape{c.hidden_size}));
        ts.push_back({p + "self_attn.o_proj.bias", &owned.back()});
      }
    }
    ts.push_back({p + "post_attention_layernorm.weight", &L.ffn_norm});
    ts.push_back({p + "mlp.gate_proj.weight", &L.w_gate});
    ts.push_back({p + "mlp.up_proj.weight", &L.w_up});
    ts.push_back({p + "mlp.down_proj.weight", &L.w_down});
  }
  ts.push_back({"model.norm.weight", &w.final_norm});
  if (!c.tie_word_embeddings) ts.push_back({"lm_head.weight", &w.lm_head});

  write_json_file(dir / "config.json", hf_config_json(c, torch_dtype_name(dtype)));
  write_json_file(dir / "generation_config.json",
                  {{"_from_model_config", true}, {"bos_token_id", c.bos_token_id}, {"eos_token_id", c.eos_token_id}});
  write_safetensors_model(dir, ts, dtype, opts.max_shard_bytes);
  if (m.tokenizer) m.tokenizer->save_hf(dir);
}

}  // namespace

void write_hf_llama(const Model& m, const fs::path& dir, const HfWriteOptions& opts) { write_hf(m, dir, opts, true); }

void write_hf_model(const Model& m, const fs::path& dir, const HfWriteOptions& opts) { write_hf(m, dir, opts, false); }

}  // namespace mlar
