// Reading HF model directories (Llama, Qwen2, Qwen3, Mistral tensor names).
#include "io/hf_model.h"

#include <filesystem>

#include <fmt/format.h>

#include "io/safetensors_store.h"
#include "tokenizer/load.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {

Model read_hf_model(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory", dir);
  const fs::path cfg_path = fs::path(dir) / "config.json";
  if (!fs::exists(cfg_path, ec)) fail("{}: no config.json (not a Hugging Face model directory)", dir);

  Model m;
  m.source = dir;
  m.format = "hf";
  m.config = read_hf_config(cfg_path.string());
  const ModelConfig& c = m.config;
  SafetensorsStore store(dir);

  // Checks the shape first, so a wrong file fails fast with the HF name. Matrices stay
  // in the file's dtype as views of the mapped shards (nothing is read until used).
  auto take = [&](const std::string& name, const Shape& expected) { return store.typed(name, expected); };

  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim();
  ModelWeights& w = m.weights;
  w.embed = take("model.embed_tokens.weight", {V, D});
  // Layers are added as their tensors are read: num_hidden_layers alone (up to 2^30)
  // must not allocate anything.
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& L = w.layers.emplace_back();
    const std::string p = fmt::format("model.layers.{}.", i);
    L.attn_norm = take(p + "input_layernorm.weight", {D});
    L.wq = take(p + "self_attn.q_proj.weight", {Q, D});
    L.wk = take(p + "self_attn.k_proj.weight", {KV, D});
    L.wv = take(p + "self_attn.v_proj.weight", {KV, D});
    L.wo = take(p + "self_attn.o_proj.weight", {D, Q});
    if (c.qk_norm) {  // Qwen3: one RMSNorm weight per layer for every q head, one for every k head
      L.q_norm = take(p + "self_attn.q_norm.weight", {c.head_dim});
      L.k_norm = take(p + "self_attn.k_norm.weight", {c.head_dim});
    }
    if (c.attention_bias) {
      L.bq = take(p + "self_attn.q_proj.bias", {Q});
      L.bk = take(p + "self_attn.k_proj.bias", {KV});
      L.bv = take(p + "self_attn.v_proj.bias", {KV});
      // Llama's (and Qwen3's) attention_bias also puts a bias on o_proj; only a zero one can be
      // represented (that is what write_hf_llama writes).
      const std::string ob = p + "self_attn.o_proj.bias";
      if (store.contains(ob)) {
        Tensor b = store.to_float(ob, {D});
        for (float x : b.data)
          if (x != 0.0f) fail("{}: tensor {} is non-zero; o_proj biases are not supported", store.file_of(ob), ob);
      }
    }
    L.ffn_norm = take(p + "post_attention_layernorm.weight", {D});
    L.w_gate = take(p + "mlp.gate_proj.weight", {F, D});
    L.w_up = take(p + "mlp.up_proj.weight", {F, D});
    L.w_down = take(p + "mlp.down_proj.weight", {D, F});
  }
  w.final_norm = take("model.norm.weight", {D});
  if (!c.tie_word_embeddings) w.lm_head = take("lm_head.weight", {V, D});  // tied: ignored if present
  check_weight_shapes(c, w, dir);

  if (fs::exists(fs::path(dir) / "tokenizer.json", ec) || fs::exists(fs::path(dir) / "tokenizer.model", ec))
    m.tokenizer = load_tokenizer(dir);
  return m;
}

}  // namespace mlar
