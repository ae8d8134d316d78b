// Reading HF DeepSeek-V3 directories (dense) into MLA models.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/deepseek_read.h"
#include "io/hf_model.h"
#include "io/safetensors_store.h"
#include "tokenizer/load.h"
#include "util/error.h"
#include "util/json_depth.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using json = nlohmann::json;

constexpr double kLatentNormEps = 1e-6;  // transformers' DeepseekV3RMSNorm default

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool present(const json& j, const char* k) { return j.contains(k) && !j.at(k).is_null(); }

int64_t int_field(const json& j, const char* k, int64_t def, const std::string& src) {
  if (!present(j, k)) return def;
  const json& v = j.at(k);
  if (!v.is_number_integer()) fail("{}: {} must be an integer, got {}", src, k, v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < 0 || x > (int64_t{1} << 30)) fail("{}: {} = {} is out of range", src, k, x);
  return x;
}

bool bool_field(const json& j, const char* k, bool def, const std::string& src) {
  if (!present(j, k)) return def;
  if (!j.at(k).is_boolean()) fail("{}: {} must be true or false, got {}", src, k, j.at(k).dump());
  return j.at(k).get<bool>();
}

bool all_zero(const Tensor& t) {
  for (float x : t.data)
    if (x != 0.0f) return false;
  return true;
}

// transformers multiplies the softmax scale by mscale^2 when the rope config names
// mscale_all_dim (YaRN-style checkpoints).
double yarn_mscale_sq(const json& rope) {
  if (!rope.is_object() || !present(rope, "mscale_all_dim") || !rope.at("mscale_all_dim").is_number()) return 1.0;
  // Strings only: json::value() throws nlohmann::type_error for a value of another type
  // (parse_hf_config checked the first of rope_type / type, not both).
  auto str = [&](const char* k) {
    return present(rope, k) && rope.at(k).is_string() ? rope.at(k).get<std::string>() : std::string();
  };
  std::string type = str("rope_type");
  if (type.empty()) type = str("type");
  if (type.empty()) type = "default";
  if (type == "default" || !present(rope, "factor") || !rope.at("factor").is_number()) return 1.0;
  const double factor = rope.at("factor").get<double>(), all_dim = rope.at("mscale_all_dim").get<double>();
  if (all_dim == 0 || factor <= 1) return 1.0;
  const double m = 0.1 * all_dim * std::log(factor) + 1.0;
  return m * m;
}

}  // namespace

bool is_deepseek_v3_dir(const std::string& dir) {
  std::ifstream f(fs::path(dir) / "config.json", std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  const json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("model_type") && j.at("model_type") == "deepseek_v3";
}

ModelConfig parse_deepseek_v3_config(const std::string& text, const std::string& src) {
  check_json_depth(text, src);  // error messages dump values recursively
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: malformed JSON: {}", src, e.what());
  }
  if (!j.is_object()) fail("{}: config is not a JSON object", src);

  // transformers' DeepseekV3Config defaults for what the file leaves out.
  const int64_t L = int_field(j, "num_hidden_layers", 61, src);
  const int64_t H = int_field(j, "num_attention_heads", 128, src);
  const int64_t first_dense = present(j, "first_k_dense_replace") ? int_field(j, "first_k_dense_replace", 3, src) : 3;
  if (first_dense < L)
    fail("{}: layers {} to {} are mixture-of-experts (first_k_dense_replace {} < num_hidden_layers {}); only dense "
         "DeepSeek models (what export writes) are read",
         src, first_dense, L - 1, first_dense, L);
  if (present(j, "num_key_value_heads") && int_field(j, "num_key_value_heads", H, src) != H)
    fail("{}: num_key_value_heads ({}) differs from num_attention_heads ({}); DeepSeek MLA expands one key and value "
         "per head from the latent",
         src, j.at("num_key_value_heads").dump(), H);

  MlaConfig a;
  a.rope_mode = RopeMode::Extend;
  a.kv_lora_rank = int_field(j, "kv_lora_rank", 512, src);
  a.q_lora_rank = j.contains("q_lora_rank") ? int_field(j, "q_lora_rank", 0, src) : 1536;
  a.qk_nope_head_dim = int_field(j, "qk_nope_head_dim", 128, src);
  a.qk_rope_head_dim = int_field(j, "qk_rope_head_dim", 64, src);
  a.v_head_dim = int_field(j, "v_head_dim", 128, src);
  a.num_rope_heads = 1;
  a.latent_norm = true;
  if (a.kv_lora_rank <= 0 || a.qk_rope_head_dim <= 0 || a.qk_rope_head_dim % 2 != 0 || a.v_head_dim <= 0)
    fail("{}: kv_lora_rank {}, qk_rope_head_dim {}, v_head_dim {}: must be positive (qk_rope_head_dim even)", src,
         a.kv_lora_rank, a.qk_rope_head_dim, a.v_head_dim);

  // The GQA-side fields through the Llama config parser (RoPE, eps, ids, checks).
  json lj = {{"model_type", "llama"},
             {"vocab_size", int_field(j, "vocab_size", 129280, src)},
             {"hidden_size", int_field(j, "hidden_size", 7168, src)},
             {"intermediate_size", int_field(j, "intermediate_size", 18432, src)},
             {"num_hidden_layers", L},
             {"num_attention_heads", H},
             {"num_key_value_heads", H},
             {"head_dim", a.qk_rope_head_dim},
             {"rms_norm_eps", present(j, "rms_norm_eps") ? j.at("rms_norm_eps") : json(1e-6)},
             {"max_position_embeddings", int_field(j, "max_position_embeddings", 4096, src)},
             {"tie_word_embeddings", bool_field(j, "tie_word_embeddings", false, src)},
             {"bos_token_id", present(j, "bos_token_id") ? j.at("bos_token_id") : json(0)},
             {"eos_token_id", present(j, "eos_token_id") ? j.at("eos_token_id") : json(1)}};
  for (const char* k : {"rope_theta", "rope_scaling", "rope_parameters", "hidden_act"})
    if (present(j, k)) lj[k] = j.at(k);
  ModelConfig c = parse_hf_config(lj, src);
  c.attention_bias = bool_field(j, "attention_bias", false, src);
  c.rope_layout = bool_field(j, "rope_interleave", true, src) ? RopeLayout::Interleaved : RopeLayout::Half;
  const json rope = present(j, "rope_scaling") ? j.at("rope_scaling") : present(j, "rope_parameters") ? j.at("rope_parameters") : json();
  a.softmax_scale = yarn_mscale_sq(rope) / std::sqrt(static_cast<double>(a.qk_nope_head_dim + a.qk_rope_head_dim));
  c.mla = a;

  return c;
}

Model read_deepseek_v3_model(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory", dir);
  const std::string src = (fs::path(dir) / "config.json").string();
  const ModelConfig c = parse_deepseek_v3_config(read_text(src), src);
  const MlaConfig& a = *c.mla;
  const int64_t L = c.num_layers, H = c.num_heads;

  Model m;
  m.source = dir;
  m.format = "deepseek-v3";
  m.config = c;
  SafetensorsStore store(dir);
  std::set<std::string> used;
  auto take = [&](const std::string& name, const Shape& expected) {
    used.insert(name);
    return store.to_float(name, expected);
  };
  // A bias the runtime has no slot for: accepted when zero.
  auto zero_bias = [&](const std::string& name, int64_t n) {
    if (!c.attention_bias) return;
    if (store.contains(name) && !all_zero(take(name, {n})))
      fail("{}: {} is not zero; the runtime's MLA has no bias there", store.file_of(name), name);
  };

  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, r = a.kv_lora_rank;
  const int64_t dn = a.qk_nope_head_dim, dr = a.qk_rope_head_dim, dv = a.v_head_dim;
  const int64_t q_rows = H * (dn + dr);
  ModelWeights& w = m.weights;
  w.embed = take("model.embed_tokens.weight", {V, D});
  // Layers are added as their tensors are read: num_hidden_layers alone must not
  // allocate anything.
  for (int64_t i = 0; i < L; ++i) {
    LayerWeights& Lw = w.layers.emplace_back();
    MlaLayerWeights& x = Lw.mla;
    const std::string p = fmt::format("model.layers.{}.", i);
    Lw.attn_norm = take(p + "input_layernorm.weight", {D});
    if (a.q_lora_rank > 0) {
      x.wq_a = take(p + "self_attn.q_a_proj.weight", {a.q_lora_rank, D});
      zero_bias(p + "self_attn.q_a_proj.bias", a.q_lora_rank);
      x.q_a_norm = take(p + "self_attn.q_a_layernorm.weight", {a.q_lora_rank});
      x.wq_b = take(p + "self_attn.q_b_proj.weight", {q_rows, a.q_lora_rank});
    } else {
      x.wq = take(p + "self_attn.q_proj.weight", {q_rows, D});
    }
    const Tensor kv_a = take(p + "self_attn.kv_a_proj_with_mqa.weight", {r + dr, D});
    x.w_dkv = Tensor({r, D}, std::vector<float>(kv_a.data.begin(), kv_a.data.begin() + r * D));
    x.w_kr = Tensor({dr, D}, std::vector<float>(kv_a.data.begin() + r * D, kv_a.data.end()));
    const std::string kv_bias = p + "self_attn.kv_a_proj_with_mqa.bias";
    if (c.attention_bias && store.contains(kv_bias)) {
      const Tensor b = take(kv_bias, {r + dr});
      x.b_dkv = Tensor({r}, std::vector<float>(b.data.begin(), b.data.begin() + r));
      x.b_kr = Tensor({dr}, std::vector<float>(b.data.begin() + r, b.data.end()));
    }
    x.kv_norm = take(p + "self_attn.kv_a_layernorm.weight", {r});
    const Tensor kv_b = take(p + "self_attn.kv_b_proj.weight", {H * (dn + dv), r});
    x.w_uk = Tensor({H * dn, r});
    x.w_uv = Tensor({H * dv, r});
    for (int64_t h = 0; h < H; ++h) {
      std::copy_n(kv_b.ptr() + h * (dn + dv) * r, dn * r, x.w_uk.ptr() + h * dn * r);
      std::copy_n(kv_b.ptr() + (h * (dn + dv) + dn) * r, dv * r, x.w_uv.ptr() + h * dv * r);
    }
    if (dn == 0) x.w_uk = Tensor{};
    x.wo = take(p + "self_attn.o_proj.weight", {D, H * dv});
    zero_bias(p + "self_attn.o_proj.bias", D);
    Lw.ffn_norm = take(p + "post_attention_layernorm.weight", {D});
    Lw.w_gate = take(p + "mlp.gate_proj.weight", {F, D});
    Lw.w_up = take(p + "mlp.up_proj.weight", {F, D});
    Lw.w_down = take(p + "mlp.down_proj.weight", {D, F});
  }
  w.final_norm = take("model.norm.weight", {D});
  if (c.tie_word_embeddings) used.insert("lm_head.weight");  // tied: ignored if present
  else w.lm_head = take("lm_head.weight", {V, D});
  for (const std::string& name : store.names())
    if (!used.count(name))
      fail("{}: unexpected tensor {} (not part of a dense DeepSeek-V3 model with this config)", store.file_of(name),
           name);

  // The runtime normalises the latent (and q_a) at rms_norm_eps; transformers at 1e-6.
  if (c.rms_norm_eps != kLatentNormEps) {
    const double beta = std::sqrt(c.rms_norm_eps / kLatentNormEps);
    for (auto& Lw : w.layers) {
      scale_values(Lw.mla.w_dkv, beta);
      scale_values(Lw.mla.b_dkv, beta);
      scale_values(Lw.mla.wq_a, beta);
    }
  }
  check_weight_shapes(m.config, w, dir);
  if (fs::exists(fs::path(dir) / "tokenizer.json", ec) || fs::exists(fs::path(dir) / "tokenizer.model", ec))
    m.tokenizer = load_tokenizer(dir);
  return m;
}

}  // namespace mlar
