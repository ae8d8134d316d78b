// The MLA directory format: tensor names, config checks and config.json.
#include "io/mla_model.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "io/hf_model.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {

bool is_mla_model_dir(const std::string& dir) {
  std::ifstream f(fs::path(dir) / "config.json", std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("mla");
}

std::vector<MlaTensorSlot> mla_layer_slots(const ModelConfig& c, int64_t layer) {
  using P = MlaTensorSlot::Presence;
  using W = MlaLayerWeights;
  const MlaConfig& m = *c.mla;
  const int64_t D = c.hidden_size, H = c.num_heads, r = m.rank(layer), rope = m.rope_values();
  const int64_t q_rows = H * (m.q_nope_width(layer) + m.q_rope_width());  // per head [q_nope | q_rope]
  const bool lora = m.q_lora_rank > 0;
  const bool has_qr = m.q_rope_in_dim > 0 && !m.absorbed;
  auto req = [](bool b) { return b ? P::Required : P::Absent; };
  return {
      {"self_attn.q_proj.weight", &W::wq, {q_rows, D}, req(!lora)},
      {lora ? "self_attn.q_b_proj.bias" : "self_attn.q_proj.bias", &W::bq, {q_rows}, P::Optional},
      {"self_attn.q_a_proj.weight", &W::wq_a, {m.q_lora_rank, D}, req(lora)},
      {"self_attn.q_a_layernorm.weight", &W::q_a_norm, {m.q_lora_rank}, req(lora)},
      {"self_attn.q_b_proj.weight", &W::wq_b, {q_rows, m.q_lora_rank}, req(lora)},
      {"self_attn.q_rope_up.weight", &W::wqr, {H, rope, m.q_rope_in_dim}, req(has_qr)},
      {"self_attn.q_norm.weight", &W::q_norm, {m.q_rope_in_dim}, req(m.qk_norm)},
      {"self_attn.k_norm.weight", &W::k_norm, {m.qk_rope_head_dim}, req(m.qk_norm)},
      {"self_attn.q_scale_proj.weight", &W::wq_scale, {H * m.qk_scale_dim, D}, req(m.qk_scale_dim > 0)},
      {"self_attn.k_scale_proj.weight", &W::wk_scale, {m.qk_scale_kv_heads * m.qk_scale_dim, D},
       req(m.qk_scale_dim > 0)},
      {"self_attn.kv_a_proj.weight", &W::w_dkv, {r, D}, P::Required},
      {"self_attn.kv_a_proj.bias", &W::b_dkv, {r}, P::Optional},
      {"self_attn.kv_a_layernorm.weight", &W::kv_norm, {r}, req(m.latent_norm)},
      {"self_attn.k_rope_proj.weight", &W::w_kr, {rope, D}, P::Required},
      {"self_attn.k_rope_proj.bias", &W::b_kr, {rope}, P::Optional},
      {"self_attn.k_up_proj.weight", &W::w_uk, {H * m.qk_nope_head_dim, r},
       req(!m.absorbed && m.qk_nope_head_dim > 0)},
      {"self_attn.v_up_proj.weight", &W::w_uv, {H * m.v_head_dim, r}, req(!m.absorbed)},
      {"self_attn.o_proj.weight", &W::wo, {D, H * (m.absorbed ? r : m.v_head_dim)}, P::Required},
  };
}

void validate_mla_config(const ModelConfig& c, const std::string& src) {
  if (!c.mla) fail("{}: no \"mla\" section", src);
  const MlaConfig& m = *c.mla;
  if (!m.layer_kv_lora_rank.empty()) {
    if (static_cast<int64_t>(m.layer_kv_lora_rank.size()) != c.num_layers)
      fail("{}: mla.layer_kv_lora_rank has {} entries for {} layers", src, m.layer_kv_lora_rank.size(), c.num_layers);
    const int64_t widest = *std::max_element(m.layer_kv_lora_rank.begin(), m.layer_kv_lora_rank.end());
    if (widest != m.kv_lora_rank)
      fail("{}: mla.kv_lora_rank ({}) must be the widest of mla.layer_kv_lora_rank ({})", src, m.kv_lora_rank, widest);
  }
}

nlohmann::json mla_config_json(const ModelConfig& c, const nlohmann::json& converted_from,
                               const std::string& torch_dtype) {
  if (!c.mla) fail("mla_config_json: the model has no MLA config");
  ModelConfig base = c;
  base.mla.reset();
  nlohmann::json j = hf_config_json(base, torch_dtype);
  nlohmann::json mla = mla_config_to_json(*c.mla);
  // The rope rows (q_proj rope rows, q_rope_up, k_rope_proj) keep the source's pairing.
  mla["rope_layout"] = rope_layout_name(c.rope_layout);
  j["mla"] = std::move(mla);
  j["mla_retrofit"] = {{"format_version", kMlaFormatVersion}, {"converted_from", converted_from}};
  return j;
}

}  // namespace mlar
