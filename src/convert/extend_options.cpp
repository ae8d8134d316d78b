// Option names and checks of the extend retrofit, and its report (extend.h).
#include <algorithm>
#include <cmath>
#include <optional>

#include <nlohmann/json.hpp>

#include "convert/extend.h"
#include "util/error.h"

namespace mlar {

QueryBias resolve_query_bias(const ExtendOptions& o) {
  if (o.query_bias != QueryBias::Auto) return o.query_bias;
  return o.latent_norm == LatentNorm::Calibrated ? QueryBias::Fold : QueryBias::Keep;
}

QkNormMode resolve_qk_norm(const ExtendOptions& o) {
  if (o.qk_norm != QkNormMode::Auto) return o.qk_norm;
  return o.latent_norm == LatentNorm::Calibrated ? QkNormMode::Calibrated : QkNormMode::Cached;
}

int64_t budget_values(const ModelConfig& c, double budget) {
  return static_cast<int64_t>(std::llround(budget * static_cast<double>(2 * c.kv_dim())));
}

std::vector<int64_t> rope_dim_candidates(const ModelConfig& c, RopeStrategy s, int64_t total) {
  const int64_t d = c.head_dim;
  std::vector<int64_t> out;
  for (int64_t v : {d / 8, d / 4, d / 2, 3 * d / 4, d}) {
    if (v < 2 || v % 2 != 0 || (total > 0 && v >= total)) continue;
    if (s == RopeStrategy::RoRoPE && d % v != 0) continue;
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  return out;
}

std::vector<RopeStrategy> rope_strategy_list(const ExtendOptions& o) {
  return o.rope_strategies.empty() ? std::vector<RopeStrategy>{o.rope_strategy} : o.rope_strategies;
}

const char* calib_mode_name(CalibMode m) { return m == CalibMode::Sequential ? "sequential" : "parallel"; }
const char* latent_norm_name(LatentNorm n) { return n == LatentNorm::None ? "none" : "calibrated"; }
const char* rank_alloc_name(RankAlloc a) { return a == RankAlloc::Uniform ? "uniform" : "energy"; }
const char* nope_rotation_name(NopeRotation n) { return n == NopeRotation::None ? "none" : "mean"; }
const char* rope_pca_name(RopePca p) { return p == RopePca::Real ? "real" : "complex"; }
std::optional<RopePca> rope_pca_from_name(const std::string& s) {
  if (s == "real") return RopePca::Real;
  if (s == "complex") return RopePca::Complex;
  return std::nullopt;
}

std::optional<CalibMode> calib_mode_from_name(const std::string& s) {
  if (s == "sequential") return CalibMode::Sequential;
  if (s == "parallel") return CalibMode::Parallel;
  return std::nullopt;
}
std::optional<LatentNorm> latent_norm_from_name(const std::string& s) {
  if (s == "none") return LatentNorm::None;
  if (s == "calibrated") return LatentNorm::Calibrated;
  return std::nullopt;
}
std::optional<NopeRotation> nope_rotation_from_name(const std::string& s) {
  if (s == "none") return NopeRotation::None;
  if (s == "mean") return NopeRotation::Mean;
  return std::nullopt;
}
std::optional<RankAlloc> rank_alloc_from_name(const std::string& s) {
  if (s == "uniform") return RankAlloc::Uniform;
  if (s == "energy") return RankAlloc::Energy;
  return std::nullopt;
}

void check_extend_options(const ModelConfig& c, const ExtendOptions& o) {
  if (c.mla) fail("extend: the model is already MLA (rope mode {}); convert starts from a GQA model",
                  rope_mode_name(c.mla->rope_mode));
  if (c.qk_norm && o.device == Device::Cuda && resolve_qk_norm(o) == QkNormMode::Cached)
    fail("--qk-norm cached with --device cuda: the cached per-head key scales run on the CPU only; use --qk-norm "
         "calibrated (the exportable form) or --device cpu");
  if (c.qk_norm && c.attention_bias && resolve_qk_norm(o) == QkNormMode::Cached)
    fail("--qk-norm cached: the model has q/k biases before its per-head norms, which the score-scale probes do "
         "not hold; use --qk-norm calibrated");
  if (!c.qk_norm && o.qk_norm != QkNormMode::Auto)
    fail("--qk-norm {} applies to models with per-head q/k norms (Qwen3); this model has none",
         qk_norm_mode_name(o.qk_norm));
  const int64_t d = c.head_dim, Z = 2 * c.kv_dim();
  if (o.calib_len < 2) fail("--calib-len {} must be at least 2 (BOS and one token)", o.calib_len);
  if (o.calib_len > c.max_position_embeddings)
    fail("--calib-len {} exceeds the model's maximum context of {}", o.calib_len, c.max_position_embeddings);
  if (o.calib_tokens < 0) fail("--calib-tokens {} must not be negative", o.calib_tokens);
  if (o.calib_tokens > 0 && o.calib_tokens < o.calib_len)
    fail("--calib-tokens {} is less than one window of --calib-len {}", o.calib_tokens, o.calib_len);
  if (!(o.holdout > 0 && o.holdout < 1)) fail("held-out fraction {} must be in (0, 1)", o.holdout);
  if (o.choice_tokens < 0) fail("--choice-tokens {} must not be negative", o.choice_tokens);
  if (o.attention_tokens < 0) fail("--attention-tokens {} must not be negative", o.attention_tokens);
  if (o.value_refit_tokens < 0) fail("--value-refit-tokens {} must not be negative", o.value_refit_tokens);
  if (!(o.value_refit_step > 0 && o.value_refit_step <= 1))
    fail("--value-refit-step {} must be in (0, 1]", o.value_refit_step);
  if (o.choice_heldout_tokens < 0) fail("--choice-heldout-tokens {} must not be negative", o.choice_heldout_tokens);
  if (o.kv_budget != 0 && o.kv_lora_rank != 0)
    fail("give either --kv-budget or --kv-lora-rank, not both");
  if (o.kv_budget == 0 && o.kv_lora_rank == 0)
    fail("--rope-mode extend needs the size of the cache: --kv-budget F (fraction of the GQA cache of {} values "
         "per layer) or --kv-lora-rank R (with --qk-rope-dim)",
         Z);
  if (o.kv_lora_rank < 0 || o.kv_lora_rank > Z)
    fail("--kv-lora-rank {} must be in [1, {}]: the latent compresses [k_nope ; v] of 2 * n_kv * d = 2 * {} * {} = {} "
         "values",
         o.kv_lora_rank, Z, c.num_kv_heads, d, Z);
  if (o.kv_budget != 0 && !(o.kv_budget > 0 && o.kv_budget < 1))
    fail("--kv-budget {} must be in (0, 1): the fraction of the GQA cache (2 * n_kv * d = {} values per layer) the "
         "MLA cache keeps",
         o.kv_budget, Z);
  if (o.freqfold < 0) fail("--freqfold {} must be positive (or auto)", o.freqfold);
  const std::vector<RopeStrategy> strategies = rope_strategy_list(o);
  const bool with_rorope =
      std::find(strategies.begin(), strategies.end(), RopeStrategy::RoRoPE) != strategies.end();
  if (o.freqfold > 1 && !with_rorope)
    fail("--freqfold {} applies to --rope-strategy rorope only (got {})", o.freqfold,
         rope_strategy_name(strategies.front()));
  int64_t total = 0;
  if (o.kv_budget > 0) {
    total = budget_values(c, o.kv_budget);
    if (total < 3)
      fail("--kv-budget {} leaves {} cached values per layer: too few for a rope key of at least 2 and a latent of "
           "at least 1",
           o.kv_budget, total);
  }
  if (o.qk_rope_dim != 0) {
    // With --freqfold auto, check with the smallest fold rorope accepts. Several
    // strategies: the d_r must suit one of them (the first one's complaint otherwise).
    std::optional<Error> first;
    bool any = false;
    for (RopeStrategy k : strategies) {
      const bool rorope = k == RopeStrategy::RoRoPE;
      if (strategies.size() > 1 && !rorope && o.freqfold > 1) continue;
      const int64_t fold =
          o.freqfold > 0 ? (rorope ? o.freqfold : 1)
                         : (rorope && o.qk_rope_dim > 0 && d % o.qk_rope_dim == 0 ? d / o.qk_rope_dim : 1);
      try {
        check_rope_choice(c, k, o.qk_rope_dim, fold);
        any = true;
      } catch (const Error& e) {
        if (!first) first = e;
      }
    }
    if (!any && first) throw *first;
    if (total > 0 && o.qk_rope_dim >= total)
      fail("--qk-rope-dim {} leaves no latent in the budget of {} values per layer (--kv-budget {})", o.qk_rope_dim,
           total, o.kv_budget);
  } else if (total > 0 && std::all_of(strategies.begin(), strategies.end(), [&](RopeStrategy k) {
               return rope_dim_candidates(c, k, total).empty();
             })) {
    fail("--kv-budget {} ({} values per layer) leaves no room for any rope key size with --rope-strategy {}",
         o.kv_budget, total, o.rope_strategies.empty() ? rope_strategy_name(o.rope_strategy) : "auto");
  }
  if (o.kv_lora_rank > 0 && o.rank_alloc == RankAlloc::Energy && o.kv_lora_rank * c.num_layers < c.num_layers)
    fail("--kv-lora-rank {} is too small to spread", o.kv_lora_rank);
  const int64_t d_r_max = o.qk_rope_dim > 0 ? o.qk_rope_dim : d;
  const int64_t q_width = c.num_heads * (d + d_r_max);
  if (o.q_lora_rank < 0 || o.q_lora_rank > std::min(c.hidden_size, q_width))
    fail("--q-lora-rank {} must be in [0, {}] (0 = full-rank W_q; at most the hidden size {} and the query width {})",
         o.q_lora_rank, std::min(c.hidden_size, q_width), c.hidden_size, q_width);
  if (o.attn_key_balance < 0) fail("--attn-key-balance {} must be positive (or auto)", o.attn_key_balance);
  const bool norms = o.latent_norm == LatentNorm::Calibrated || o.q_lora_rank > 0;
  if (norms && o.reservoir <= o.q_lora_rank)
    fail("calibration reservoir of {} samples is too small for --q-lora-rank {}", o.reservoir, o.q_lora_rank);
  if (!(o.query_bias_ridge >= 0)) fail("--query-bias-ridge {} must not be negative", o.query_bias_ridge);
  if (!o.eval_ids.empty() && (o.eval_ctx < 2 || o.eval_ctx > c.max_position_embeddings))
    fail("--ctx {} must be in [2, {}] (the model's maximum context)", o.eval_ctx, c.max_position_embeddings);
}

int64_t ExtendReport::kv_bytes_before() const { return stages.empty() ? 0 : stages.front().kv_bytes_per_token; }
int64_t ExtendReport::kv_bytes_after() const { return stages.empty() ? 0 : stages.back().kv_bytes_per_token; }

nlohmann::json ExtendReport::to_json() const {
  using nlohmann::json;
  json opts = {{"calib_len", options.calib_len},
               {"calib_tokens", options.calib_tokens},
               {"calib_mode", calib_mode_name(options.calib_mode)},
               {"device", device_name(options.device)},
               {"holdout", options.holdout},
               {"choice", choice_mode_name(options.choice)},
               {"choice_tokens", options.choice_tokens},
               {"choice_heldout_tokens", options.choice_heldout_tokens},
               {"attention_tokens", options.attention_tokens},
               {"value_refit_tokens", options.value_refit_tokens},
               {"value_refit_step", options.value_refit_step},
               {"rope_strategy", options.rope_strategies.empty() ? json(rope_strategy_name(options.rope_strategy))
                                                                 : json("auto")},
               {"qk_rope_dim", options.qk_rope_dim == 0 ? json("auto") : json(options.qk_rope_dim)},
               {"freqfold", options.freqfold == 0 ? json("auto") : json(options.freqfold)},
               {"nope_rotation", nope_rotation_name(options.nope_rotation)},
               {"rope_pca", rope_pca_name(options.rope_pca)},
               {"kv_method", kv_method_name(options.kv_method)},
               {"rank_alloc", rank_alloc_name(options.rank_alloc)},
               {"q_lora_rank", options.q_lora_rank},
               {"latent_norm", latent_norm_name(options.latent_norm)},
               {"query_bias", query_bias_name(options.query_bias)},
               {"qk_norm", qk_norm_mode_name(options.qk_norm)},
               {"query_bias_ridge", options.query_bias_ridge},
               {"eval_ctx", options.eval_ctx}};
  if (options.kv_budget > 0) opts["kv_budget"] = options.kv_budget;
  if (options.kv_lora_rank > 0) opts["kv_lora_rank"] = options.kv_lora_rank;
  if (options.kv_method == KvMethod::Attn)
    opts["attn_key_balance"] = options.attn_key_balance == 0 ? json("auto") : json(options.attn_key_balance);
  json st = json::array();
  for (const auto& s : stages)
    st.push_back({{"stage", s.name},
                  {"perplexity", s.ppl ? json(*s.ppl) : json(nullptr)},
                  {"kv_bytes_per_token", s.kv_bytes_per_token}});
  json cand = json::array();
  for (const auto& c : candidates) {
    json x = {{"rope_strategy", rope_strategy_name(c.rope_strategy)},
              {"qk_rope_dim", c.qk_rope_dim},
              {"freqfold", c.freqfold},
              {"kv_lora_rank", c.kv_lora_rank},
              {"heldout_perplexity", c.heldout_ppl},
              {"seconds", c.seconds}};
    if (c.key_balance > 0) x["attn_key_balance"] = c.key_balance;
    cand.push_back(x);
  }
  json times = json::object();
  for (const auto& [name, sec] : timings) times[name] = sec;
  json layers = json::array();
  json refit = json::array();  // per layer: mean over the fit's blocks of the relative output error
  for (const auto& v : value_refit)
    refit.push_back({{"tokens", v.tokens}, {"output_error_before", v.mean_before()}, {"output_error_after", v.mean_after()}});
  for (const auto& t : layer_times)
    layers.push_back({{"statistics", t.stats}, {"conversion", t.convert}, {"value_refit", t.refit}, {"advance", t.advance}});
  json mem = {{"second_moment_bytes", memory.second_moment},
              {"reservoir_bytes", memory.reservoir},
              {"attention_histogram_bytes", memory.histogram},
              {"carried_state_bytes", memory.carried_states},
              {"carried_states_file_backed", memory.carried_file_backed},
              {"source_pass_bytes", memory.source_pass}};
  const int64_t before = kv_bytes_before(), after = kv_bytes_after();
  json qb = {{"mode", query_bias_name(query_bias_mode)}, {"removed", !query_bias.empty()}};
  if (!query_bias.empty()) {
    qb["heldout_tokens"] = query_bias.tokens;
    qb["max_abs_logit_diff"] = query_bias.max_abs_logit_diff;
    qb["heldout_perplexity_kept"] = query_bias.ppl_kept;
    qb["heldout_perplexity"] = query_bias.ppl;
    qb["layer_residual"] = layer_query_bias_residual;
    qb["note"] = query_bias.describe();
  }
  json qk = nullptr;
  if (qk_norm_mode != QkNormMode::Auto)
    qk = {{"mode", qk_norm_mode_name(qk_norm_mode)},
          {"layer_query_scale", layer_q_norm_scale},
          {"layer_key_scale", layer_k_norm_scale},
          {"cached_key_scales_per_token_layer",
           qk_norm_mode == QkNormMode::Cached && !layer_k_norm_scale.empty() ? layer_k_norm_scale.front().size() : 0}};
  if (!layer_kv_bias_residual.empty()) qb["kv_bias_folded_layer_residual"] = layer_kv_bias_residual;
  return {{"options", opts},
          {"qk_norm", qk},
          {"query_bias", qb},
          {"rope_strategy", rope_strategy_name(rope_strategy)},
          {"qk_rope_dim", qk_rope_dim},
          {"freqfold", freqfold},
          {"attn_key_balance", key_balance > 0 ? json(key_balance) : json(nullptr)},
          {"layer_kv_lora_rank", layer_rank},
          {"rope_pairs_source_index", kept_freqs},
          {"layer_rope_key_energy", layer_rope_captured},
          {"layer_latent_objective_kept", layer_latent_captured},
          {"value_refit", refit},
          {"selection", cand},
          {"stages", st},
          {"kv_bytes_per_token_before", before},
          {"kv_bytes_per_token_after", after},
          {"compression_ratio", after > 0 ? static_cast<double>(before) / static_cast<double>(after) : 0.0},
          {"kv_fraction", before > 0 ? static_cast<double>(after) / static_cast<double>(before) : 0.0},
          {"calibration",
           {{"tokens", calib_tokens},
            {"windows", calib_windows},
            {"heldout_tokens", heldout_tokens},
            {"choice_tokens", choice_calib_tokens},
            {"choice_heldout_tokens", choice_heldout_tokens},
            {"passes", calib_passes},
            {"memory", mem}}},
          {"seconds", seconds},
          {"timings", times},
          {"layer_seconds", layers}};
}

}  // namespace mlar
