// Reading MLA model directories (docs/mla-format.md).
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "io/hf_model.h"
#include "io/mla_model.h"
#include "io/safetensors_store.h"
#include "tokenizer/load.h"
#include "util/error.h"
#include "util/json_depth.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open", path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  check_json_depth(text, path);  // before parsing: error messages dump nested values recursively
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON: {}", path, e.what());
  }
}

// config.json -> ModelConfig with mla set and the recorded rope layout.
ModelConfig parse_mla_config(const nlohmann::json& j, const std::string& src) {
  ModelConfig c = parse_hf_config(j, src);
  const nlohmann::json& mla = j.at("mla");
  c.mla = mla_config_from_json(mla, src);
  if (mla.contains("rope_layout")) {
    const nlohmann::json& l = mla.at("rope_layout");
    if (l == "half") c.rope_layout = RopeLayout::Half;
    else if (l == "interleaved") c.rope_layout = RopeLayout::Interleaved;
    else fail("{}: mla.rope_layout {} is not \"half\" or \"interleaved\"", src, l.dump());
  }
  auto prov = j.find("mla_retrofit");
  if (prov == j.end() || !prov->is_object())
    fail("{}: no \"mla_retrofit\" object (with format_version) beside \"mla\"", src);
  auto ver = prov->find("format_version");
  if (ver == prov->end() || !ver->is_number_integer())
    fail("{}: mla_retrofit.format_version is missing or not an integer", src);
  if (ver->get<int64_t>() != kMlaFormatVersion)
    fail("{}: mla_retrofit.format_version {} is not supported (this build reads version {})", src,
         ver->get<int64_t>(), kMlaFormatVersion);
  validate_mla_config(c, src);
  return c;
}

}  // namespace

Model read_mla_model(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory", dir);
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path, ec)) fail("{}: no config.json", dir);

  Model m;
  m.source = dir;
  m.format = "mla";
  m.config = parse_mla_config(read_json(cfg_path), cfg_path);
  const ModelConfig& c = m.config;
  SafetensorsStore store(dir);
  std::set<std::string> used;

  auto take = [&](const std::string& name, const Shape& expected) {
    used.insert(name);
    return store.typed(name, expected);
  };

  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  ModelWeights& w = m.weights;
  w.embed = take("model.embed_tokens.weight", {V, D});
  // One layer at a time: num_hidden_layers is only trusted as far as the tensors go.
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& L = w.layers.emplace_back();
    const std::string p = fmt::format("model.layers.{}.", i);
    L.attn_norm = take(p + "input_layernorm.weight", {D});
    for (const MlaTensorSlot& s : mla_layer_slots(c, i)) {
      const std::string name = p + s.name;
      const bool present = store.contains(name);
      if (s.presence == MlaTensorSlot::Presence::Absent) {
        if (present)
          fail("{}: tensor {} has no place in this MLA config (q_lora_rank {}, absorbed {}, latent_norm {}, qk_norm {})",
               store.file_of(name), name, c.mla->q_lora_rank, c.mla->absorbed, c.mla->latent_norm, c.mla->qk_norm);
        continue;
      }
      if (present || s.presence == MlaTensorSlot::Presence::Required) L.mla.*s.member = take(name, s.shape);
    }
    L.ffn_norm = take(p + "post_attention_layernorm.weight", {D});
    L.w_gate = take(p + "mlp.gate_proj.weight", {F, D});
    L.w_up = take(p + "mlp.up_proj.weight", {F, D});
    L.w_down = take(p + "mlp.down_proj.weight", {D, F});
  }
  w.final_norm = take("model.norm.weight", {D});
  if (c.tie_word_embeddings) used.insert("lm_head.weight");  // tied: ignored if present
  else w.lm_head = take("lm_head.weight", {V, D});
  for (const std::string& name : store.names())
    if (!used.count(name))
      fail("{}: unexpected tensor {} (not part of an MLA model with this config)", store.file_of(name), name);
  check_weight_shapes(c, w, dir);

  if (fs::exists(fs::path(dir) / "tokenizer.json", ec) || fs::exists(fs::path(dir) / "tokenizer.model", ec))
    m.tokenizer = load_tokenizer(dir);
  return m;
}

}  // namespace mlar
