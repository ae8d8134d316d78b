#include "convert/target.h"

#include <algorithm>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "convert/extend.h"
#include "util/error.h"

namespace mlar {

const std::vector<TargetProfile>& serve_targets() {
  // Sources of every constraint: docs/serving.md.
  static const std::vector<TargetProfile> t{
      {ServeTarget::Transformers, "transformers", {}, {}, true,
       "transformers' DeepseekV3ForCausalLM (any uniform shape, eager/SDPA attention)"},
      {ServeTarget::Vllm, "vllm", {{512, 64}, {256, 64}}, {64, 128, 192}, true,
       "vLLM's MLA backends: 576 = 512 + 64 (FlashMLA, CUTLASS MLA, Triton MLA, FlashInfer MLA), "
       "320 = 256 + 64 (Triton MLA, FlashInfer/TRT-LLM MLA); FlashInfer needs qk_nope_head_dim 64, 128 or 192"},
      {ServeTarget::Sglang, "sglang", {{512, 64}, {256, 64}}, {64, 128, 192}, true,
       "SGLang's MLA backends: 576 = 512 + 64 (FlashMLA, CUTLASS MLA, FlashInfer MLA, Triton), "
       "320 = 256 + 64 (FlashInfer MLA, Triton); FlashInfer needs qk_nope_head_dim 64, 128 or 192"},
      {ServeTarget::LlamaCpp, "llama.cpp", {{512, 64}}, {}, false,
       "llama.cpp's CUDA flash attention for deepseek2: K 576 = 512 + 64, V 512 only (other shapes fall back "
       "to the slow path); GGUF deepseek2 carries no Llama 3 / linear RoPE scaling"},
  };
  return t;
}

const TargetProfile& target_profile(ServeTarget t) {
  for (const TargetProfile& p : serve_targets())
    if (p.target == t) return p;
  fail("unknown serving target");
}

std::optional<ServeTarget> serve_target_from_name(const std::string& s) {
  for (const TargetProfile& p : serve_targets())
    if (s == p.name) return p.target;
  return std::nullopt;
}

std::string serve_target_names() {
  std::string s;
  for (const TargetProfile& p : serve_targets()) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

namespace {

std::string shapes_text(const TargetProfile& p) {
  std::string s;
  for (const TargetShape& sh : p.shapes)
    s += fmt::format("{}r {} + d_r {} = {}", s.empty() ? "" : " or ", sh.kv_lora_rank, sh.qk_rope_dim,
                     sh.kv_lora_rank + sh.qk_rope_dim);
  return s;
}

// The widest shape of any fixed-shape target that fits `Z` values per layer, as advice.
std::string nearest_setting(int64_t Z, const TargetProfile& p) {
  std::string s = fmt::format("--target transformers with --kv-budget F (any uniform shape)");
  for (const TargetProfile& q : serve_targets())
    for (const TargetShape& sh : q.shapes)
      if (q.target != p.target && sh.kv_lora_rank + sh.qk_rope_dim <= Z)
        return fmt::format("--target {} ({}), or {}", q.name, shapes_text(q), s);
  return s;
}

}  // namespace

TargetFit fit_target(const ModelConfig& c, ServeTarget t, TargetShape requested) {
  const TargetProfile& p = target_profile(t);
  TargetFit f;
  f.target = t;
  const int64_t Z = 2 * c.kv_dim();
  auto refuse = [&](std::string why) {
    f.fits = false;
    f.why = std::move(why);
    return f;
  };
  if (!p.nope_dims.empty() && std::find(p.nope_dims.begin(), p.nope_dims.end(), c.head_dim) == p.nope_dims.end()) {
    std::string dims;
    for (int64_t d : p.nope_dims) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    return refuse(fmt::format("the NoPE head size is the source's head size {}, and {} needs one of {}; nearest: {}",
                              c.head_dim, p.name, dims, nearest_setting(Z, p)));
  }
  if (!p.rope_scaling_ok && c.rope_scaling.type != RopeScaling::Type::None)
    return refuse(fmt::format("the source uses {} RoPE scaling, which {}'s format cannot carry; nearest: {}",
                              rope_scaling_name(c.rope_scaling.type), p.name, nearest_setting(Z, p)));
  if (p.shapes.empty()) {
    if (requested.kv_lora_rank > 0) {
      f.shape = requested;
      f.kv_fraction = static_cast<double>(requested.kv_lora_rank + requested.qk_rope_dim) / static_cast<double>(Z);
    }
    f.fits = true;
    return f;
  }
  for (const TargetShape& sh : p.shapes) {
    if (requested.kv_lora_rank > 0 && requested.kv_lora_rank != sh.kv_lora_rank) continue;
    if (requested.qk_rope_dim > 0 && requested.qk_rope_dim != sh.qk_rope_dim) continue;
    if (sh.qk_rope_dim > c.head_dim) continue;
    if (sh.kv_lora_rank + sh.qk_rope_dim > Z) continue;
    f.fits = true;
    f.shape = sh;
    f.kv_fraction = static_cast<double>(sh.kv_lora_rank + sh.qk_rope_dim) / static_cast<double>(Z);
    return f;
  }
  if (requested.kv_lora_rank > 0 || requested.qk_rope_dim > 0) {
    bool listed = false;
    for (const TargetShape& sh : p.shapes)
      listed |= (requested.kv_lora_rank == 0 || requested.kv_lora_rank == sh.kv_lora_rank) &&
                (requested.qk_rope_dim == 0 || requested.qk_rope_dim == sh.qk_rope_dim);
    if (!listed)
      return refuse(fmt::format("{}'s fast kernels take {} (asked: r {}, d_r {}); drop --kv-lora-rank / "
                                "--qk-rope-dim to let the target choose",
                                p.name, shapes_text(p), requested.kv_lora_rank ? std::to_string(requested.kv_lora_rank) : "any",
                                requested.qk_rope_dim ? std::to_string(requested.qk_rope_dim) : "any"));
  }
  return refuse(fmt::format("the model caches 2 n_kv d = 2 * {} * {} = {} values per token and layer, fewer than {}'s "
                            "fast kernels take ({}); the retrofit would grow the cache; nearest: {}",
                            c.num_kv_heads, c.head_dim, Z, p.name, shapes_text(p), nearest_setting(Z, p)));
}

nlohmann::json target_fit_json(const TargetFit& f) {
  nlohmann::json j = {{"target", target_profile(f.target).name}, {"fits", f.fits}};
  if (f.fits && f.shape.kv_lora_rank > 0) {
    j["kv_lora_rank"] = f.shape.kv_lora_rank;
    j["qk_rope_head_dim"] = f.shape.qk_rope_dim;
    j["kv_fraction"] = f.kv_fraction;
  }
  if (f.fits && f.shape.kv_lora_rank == 0) j["shape"] = "any (from --kv-budget)";
  if (!f.fits) j["why"] = f.why;
  return j;
}

void apply_target(const ModelConfig& c, ServeTarget t, ExtendOptions& o) {
  const TargetProfile& p = target_profile(t);
  if (c.mla) fail("--target {}: the model is already MLA; convert starts from a GQA model", p.name);
  if (o.rank_alloc != RankAlloc::Uniform)
    fail("--target {}: the DeepSeek formats hold one kv_lora_rank for all layers; drop --rank-alloc {}", p.name,
         rank_alloc_name(o.rank_alloc));
  if (!p.shapes.empty() && o.kv_budget != 0)
    fail("--target {} fixes the cache shape ({}), so the budget follows from it; drop --kv-budget {}", p.name,
         shapes_text(p), o.kv_budget);
  const TargetFit f = fit_target(c, t, {o.kv_lora_rank, o.qk_rope_dim});
  if (!f.fits) fail("--target {}: {}", p.name, f.why);
  if (!p.shapes.empty()) {
    o.kv_lora_rank = f.shape.kv_lora_rank;
    o.qk_rope_dim = f.shape.qk_rope_dim;
  }
  o.latent_norm = LatentNorm::Calibrated;
  // vLLM / SGLang's DeepSeek layers and GGUF deepseek2 load no attention biases;
  // transformers' DeepseekV3 does (attention_bias).
  if (!p.shapes.empty()) o.fold_kv_bias = true;
}

}  // namespace mlar
