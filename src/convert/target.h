// Serving targets (docs/serving.md): the shapes and options an engine's fast MLA path
// accepts, applied to `convert --rope-mode extend`. A target fixes the latent rank r and
// the rope key size d_r (the KV budget follows from them), uniform ranks, the calibrated
// latent norm every DeepSeek loader applies, and no query bias.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/config.h"

namespace mlar {

struct ExtendOptions;

enum class ServeTarget { Transformers, Vllm, Sglang, LlamaCpp };

// One cache shape an engine's fast kernels take: the latent r and the rope key d_r
// (the cached row is r + d_r values).
struct TargetShape {
  int64_t kv_lora_rank = 0, qk_rope_dim = 0;
};

struct TargetProfile {
  ServeTarget target;
  const char* name;                 // as --target spells it
  std::vector<TargetShape> shapes;  // fast-path shapes, preferred first; empty = any (a budget picks)
  std::vector<int64_t> nope_dims;   // allowed qk_nope_head_dim (= the source head size); empty = any
  bool rope_scaling_ok = true;      // false: the format cannot carry the source's RoPE scaling
  const char* engine_note;          // what the fast path is, for messages and inspect
};

const std::vector<TargetProfile>& serve_targets();
const TargetProfile& target_profile(ServeTarget t);
std::optional<ServeTarget> serve_target_from_name(const std::string& s);
std::string serve_target_names();  // "transformers, vllm, sglang, llama.cpp"

// What a target gives for a source: the shape chosen (the first of the profile's shapes
// whose cache r + d_r fits in the source's 2 n_kv d values per layer) or why none fits.
struct TargetFit {
  ServeTarget target;
  bool fits = false;
  TargetShape shape;          // when fits (for a free-shape target: zero, the budget decides)
  double kv_fraction = 0;     // (r + d_r) / (2 n_kv d), when fits with a fixed shape
  std::string why;            // when it does not fit: the reason and the nearest setting that does
};

// `requested` (the user's --kv-lora-rank / --qk-rope-dim, 0 = not given) must be one
// of the profile's shapes when the profile has fixed shapes.
TargetFit fit_target(const ModelConfig& c, ServeTarget t, TargetShape requested = {});
nlohmann::json target_fit_json(const TargetFit& f);

// Sets what the target fixes in `o` (rank, rope size, uniform ranks, calibrated latent
// norm), after checking that the options the user gave agree with it; throws
// mlar::Error naming the option and the target otherwise, or, when the model is too
// small for the target's shapes, naming the nearest setting that works.
void apply_target(const ModelConfig& c, ServeTarget t, ExtendOptions& o);

}  // namespace mlar
