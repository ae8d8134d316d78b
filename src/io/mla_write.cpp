// Writing MLA model directories (docs/mla-format.md).
#include <fmt/format.h>

#include "io/mla_model.h"
#include "io/json_file.h"
#include "io/safetensors_writer.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {
void write_mla_model(const Model& m, const fs::path& dir, const MlaWriteOptions& opts) {
  const std::string where = dir.string();
  const std::string src = m.source.empty() ? where : m.source;
  const DType dtype = parse_write_dtype(opts.dtype, where);
  const ModelConfig& c = m.config;
  if (!c.mla) fail("{}: model is not MLA; write it as an HF directory instead", src);
  c.validate(src);
  validate_mla_config(c, src);
  check_weight_shapes(c, m.weights, src);

  const ModelWeights& w = m.weights;
  std::vector<NamedTensor> ts;
  ts.push_back({"model.embed_tokens.weight", &w.embed});
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& L = w.layers[i];
    const std::string p = fmt::format("model.layers.{}.", i);
    ts.push_back({p + "input_layernorm.weight", &L.attn_norm});
    for (const MlaTensorSlot& s : mla_layer_slots(c, static_cast<int64_t>(i))) {
      const TypedTensor& t = L.mla.*s.member;
      if (!t.empty()) ts.push_back({p + s.name, &t});  // check_weight_shapes made it fit the slot
    }
    ts.push_back({p + "post_attention_layernorm.weight", &L.ffn_norm});
    ts.push_back({p + "mlp.gate_proj.weight", &L.w_gate});
    ts.push_back({p + "mlp.up_proj.weight", &L.w_up});
    ts.push_back({p + "mlp.down_proj.weight", &L.w_down});
  }
  ts.push_back({"model.norm.weight", &w.final_norm});
  if (!c.tie_word_embeddings) ts.push_back({"lm_head.weight", &w.lm_head});

  const nlohmann::json from = opts.converted_from.is_null() ? nlohmann::json{{"path", m.source}} : opts.converted_from;
  write_json_file(dir / "config.json", mla_config_json(c, from, torch_dtype_name(dtype)));
  write_json_file(dir / "generation_config.json",
                  {{"_from_model_config", true}, {"bos_token_id", c.bos_token_id}, {"eos_token_id", c.eos_token_id}});
  write_safetensors_model(dir, ts, dtype, opts.max_shard_bytes);
  if (m.tokenizer) m.tokenizer->save_hf(dir);
}

}  // namespace mlar
