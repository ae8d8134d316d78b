#include "model/mla.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace mlar {

const char* rope_mode_name(RopeMode m) { return m == RopeMode::Repeat ? "repeat" : "extend"; }

std::string QueryBiasRemoval::describe() const {
  const char* how = mode == "fold"   ? "folded into W_q as a least-squares linear function of the attention input"
                    : mode == "mean" ? "folded into W_q along the attention input's mean direction"
                                     : "dropped";
  return fmt::format("query bias {} ({}; an approximation): on {} held-out calibration tokens max |dlogit| {:.4g}, "
                     "perplexity {:.4f} with the bias kept -> {:.4f}",
                     how, mode, tokens, max_abs_logit_diff, ppl_kept, ppl);
}

nlohmann::json mla_config_to_json(const MlaConfig& c) {
  nlohmann::json j = {{"rope_mode", rope_mode_name(c.rope_mode)},
                      {"kv_lora_rank", c.kv_lora_rank},
                      {"qk_nope_head_dim", c.qk_nope_head_dim},
                      {"qk_rope_head_dim", c.qk_rope_head_dim},
                      {"num_rope_heads", c.num_rope_heads},
                      {"v_head_dim", c.v_head_dim},
                      {"q_lora_rank", c.q_lora_rank},
                      {"q_rope_in_dim", c.q_rope_in_dim},
                      {"latent_norm", c.latent_norm},
                      {"absorbed", c.absorbed},
                      {"softmax_scale", c.softmax_scale}};
  if (c.qk_norm) j["qk_norm"] = true;
  if (c.qk_scale_dim > 0) {
    j["qk_scale_dim"] = c.qk_scale_dim;
    j["qk_scale_kv_heads"] = c.qk_scale_kv_heads;
  }
  if (c.latent_linear) j["latent_linear"] = true;
  if (!c.layer_kv_lora_rank.empty()) j["layer_kv_lora_rank"] = c.layer_kv_lora_rank;
  if (!c.rope_inv_freq.empty()) j["rope_inv_freq"] = c.rope_inv_freq;
  if (!c.query_bias.empty())
    j["query_bias_removed"] = {{"mode", c.query_bias.mode},
                               {"max_abs_logit_diff", c.query_bias.max_abs_logit_diff},
                               {"perplexity_kept", c.query_bias.ppl_kept},
                               {"perplexity", c.query_bias.ppl},
                               {"tokens", c.query_bias.tokens}};
  return j;
}

MlaConfig mla_config_from_json(const nlohmann::json& j, const std::string& src) {
  if (!j.is_object()) fail("{}: the \"mla\" section must be an object", src);
  auto get_int = [&](const char* k, int64_t def, bool required) -> int64_t {
    if (!j.contains(k)) {
      if (required) fail("{}: mla.{} is missing", src, k);
      return def;
    }
    if (!j[k].is_number_integer()) fail("{}: mla.{} must be an integer", src, k);
    int64_t v = j[k].get<int64_t>();
    if (v < 0) fail("{}: mla.{} must not be negative, got {}", src, k, v);
    // Bounded like the model sizes, so products of two of them cannot overflow.
    if (v > (int64_t{1} << 30)) fail("{}: mla.{} = {} is out of range", src, k, v);
    return v;
  };
  // Typed getters: j.value() throws nlohmann's type_error for a value of another type.
  auto get_bool = [&](const char* k) {
    if (!j.contains(k)) return false;
    if (!j[k].is_boolean()) fail("{}: mla.{} must be true or false", src, k);
    return j[k].get<bool>();
  };
  if (j.contains("rope_mode") && !j["rope_mode"].is_string()) fail("{}: mla.rope_mode must be a string", src);
  MlaConfig c;
  std::string mode = j.value("rope_mode", std::string("repeat"));
  if (mode == "repeat") c.rope_mode = RopeMode::Repeat;
  else if (mode == "extend") c.rope_mode = RopeMode::Extend;
  else fail("{}: mla.rope_mode '{}' is not repeat or extend", src, mode);
  c.kv_lora_rank = get_int("kv_lora_rank", 0, true);
  c.qk_nope_head_dim = get_int("qk_nope_head_dim", 0, true);
  c.qk_rope_head_dim = get_int("qk_rope_head_dim", 0, true);
  c.num_rope_heads = get_int("num_rope_heads", 1, false);
  c.v_head_dim = get_int("v_head_dim", 0, true);
  c.q_lora_rank = get_int("q_lora_rank", 0, false);
  c.q_rope_in_dim = get_int("q_rope_in_dim", 0, false);
  c.latent_norm = get_bool("latent_norm");
  c.absorbed = get_bool("absorbed");
  c.qk_norm = get_bool("qk_norm");
  c.qk_scale_dim = get_int("qk_scale_dim", 0, false);
  c.qk_scale_kv_heads = get_int("qk_scale_kv_heads", 0, false);
  c.latent_linear = get_bool("latent_linear");
  if (!j.contains("softmax_scale") || !j["softmax_scale"].is_number()) fail("{}: mla.softmax_scale is missing", src);
  c.softmax_scale = j["softmax_scale"].get<double>();
  if (j.contains("layer_kv_lora_rank")) {
    for (const auto& v : j["layer_kv_lora_rank"]) {
      if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t{1} << 30))
        fail("{}: mla.layer_kv_lora_rank must hold positive integers up to 2^30", src);
      c.layer_kv_lora_rank.push_back(v.get<int64_t>());
    }
  }
  if (j.contains("rope_inv_freq")) {
    for (const auto& v : j["rope_inv_freq"]) {
      if (!v.is_number() || !(v.get<double>() > 0)) fail("{}: mla.rope_inv_freq must hold positive numbers", src);
      c.rope_inv_freq.push_back(v.get<double>());
    }
    if (static_cast<int64_t>(c.rope_inv_freq.size()) * 2 != c.qk_rope_head_dim)
      fail("{}: mla.rope_inv_freq has {} values, qk_rope_head_dim {} needs {}", src, c.rope_inv_freq.size(),
           c.qk_rope_head_dim, c.qk_rope_head_dim / 2);
  }
  if (j.contains("query_bias_removed")) {
    const auto& q = j["query_bias_removed"];
    if (!q.is_object() || !q.contains("mode") || !q["mode"].is_string())
      fail("{}: mla.query_bias_removed must be an object with a string mode", src);
    c.query_bias.mode = q["mode"].get<std::string>();
    if (c.query_bias.mode != "fold" && c.query_bias.mode != "mean" && c.query_bias.mode != "drop")
      fail("{}: mla.query_bias_removed.mode '{}' is not fold, mean or drop", src, c.query_bias.mode);
    auto num = [&](const char* k) {
      if (!q.contains(k) || !q[k].is_number()) fail("{}: mla.query_bias_removed.{} must be a number", src, k);
      return q[k].get<double>();
    };
    c.query_bias.max_abs_logit_diff = num("max_abs_logit_diff");
    c.query_bias.ppl_kept = num("perplexity_kept");
    c.query_bias.ppl = num("perplexity");
    c.query_bias.tokens = static_cast<int64_t>(num("tokens"));
  }
  if (c.kv_lora_rank <= 0) fail("{}: mla.kv_lora_rank must be positive", src);
  if (c.qk_rope_head_dim <= 0 || c.qk_rope_head_dim % 2) fail("{}: mla.qk_rope_head_dim must be positive and even", src);
  if (c.num_rope_heads <= 0) fail("{}: mla.num_rope_heads must be positive", src);
  if (c.rope_values() > (int64_t{1} << 30))
    fail("{}: mla.num_rope_heads * mla.qk_rope_head_dim = {} is out of range", src, c.rope_values());
  if (c.v_head_dim <= 0) fail("{}: mla.v_head_dim must be positive", src);
  if (!(c.softmax_scale > 0)) fail("{}: mla.softmax_scale must be positive", src);
  if (c.qk_norm && (c.q_rope_in_dim <= 0 || c.absorbed))
    fail("{}: mla.qk_norm needs the rope-query up-projection (q_rope_in_dim > 0, not absorbed): the query norm "
         "acts on each head's rope-query input",
         src);
  if (c.qk_scale_dim > 0 && (c.qk_scale_kv_heads <= 0 || c.absorbed || c.qk_norm))
    fail("{}: mla.qk_scale_dim needs mla.qk_scale_kv_heads > 0, no stored absorption and no mla.qk_norm", src);
  if (c.qk_scale_dim == 0 && c.qk_scale_kv_heads != 0)
    fail("{}: mla.qk_scale_kv_heads is set without mla.qk_scale_dim", src);
  return c;
}

}  // namespace mlar
