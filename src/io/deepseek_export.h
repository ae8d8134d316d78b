// Exporting MLA models to what serving engines read (MLA.md §5):
//   deepseek-v3  an HF directory for transformers' DeepseekV3ForCausalLM (and vLLM,
//                SGLang): config.json (model_type deepseek_v3), safetensors, tokenizer
//   gguf         a GGUF file of architecture `deepseek2` (llama.cpp)
//
// Both formats hold one fixed form of MLA, the "DeepSeek layout": one rope key shared
// by all heads (n_r = 1), a NoPE part (d_n >= 1), one latent rank for every layer, an
// RMSNorm on the latent, no stored absorption, softmax scale 1/sqrt(d_n + d_r), rope
// frequencies derived from rope_theta (and rope_scaling), interleaved rope rows.
// deepseek_layout() brings a model into that form by exact rewrites only, and refuses
// (mlar::Error naming the model and why) what no rewrite can express:
//   - GQA models (convert first); stored absorption (export before --absorb);
//     n_r > 1 (the repeat mode); per-layer ranks; no latent norm (the loaders always
//     apply kv_a_layernorm: convert with --latent-norm calibrated);
//   - a query bias (neither format has a slot); latent / rope-key biases in GGUF;
//   - rope_inv_freq that no (rope_theta, linear factor) or the model's own rope
//     config produces; RoPE scaling in GGUF.
// The exact rewrites (each reported as a note):
//   - W_qr of a one-rope-head model folded into the rope rows of the query;
//   - d_n = 0 padded to 1 with a zero query row and a zero key up-projection row;
//   - softmax scale s != 1/sqrt(d_n + d_r): the ratio folded into every query row;
//   - explicit rope frequencies replaced by the (theta, linear factor) producing them;
//   - half-layout rope rows permuted to interleaved;
//   - all-zero biases dropped;
//   - deepseek-v3 only: rms_norm_eps != 1e-6. transformers builds kv_a_layernorm and
//     q_a_layernorm with eps 1e-6 whatever config.json says, while vLLM and llama.cpp
//     use rms_norm_eps; exporting eps 1e-6 with the residual stream scaled by
//     a = sqrt(1e-6 / eps) (embedding, o_proj, down_proj; latent and q_a projections;
//     1/a on the final norm when the head is tied) keeps every norm exactly as before
//     in every engine (RMSNorm(a x) at eps e a^2 equals RMSNorm(x) at eps e).
// The result evaluates to the same logits in this project's runtime (to rounding).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/model.h"

namespace mlar {

enum class DeepseekFormat { HfDeepseekV3, GgufDeepseek2 };
const char* deepseek_format_name(DeepseekFormat f);  // "deepseek-v3" | "gguf"
// "deepseek-v3" | "gguf"; anything else fails listing both.
DeepseekFormat parse_deepseek_format(const std::string& name);

// The model in the DeepSeek layout for format `f` (consumed). Appends one line per
// rewrite made to `notes` when given.
Model deepseek_layout(Model m, DeepseekFormat f, std::vector<std::string>* notes = nullptr);

// deepseek_layout one layer at a time, for exports that stream (an 8B model's
// rewritten tensors do not fit in memory at once): the plan validates the model and
// computes the new config and notes without touching a tensor; each layer is then
// rewritten on its own (unchanged tensors stay views of the source file), and the
// globals (embedding, final norm) once.
struct DeepseekLayoutPlan {
  DeepseekFormat format = DeepseekFormat::HfDeepseekV3;
  std::string source;
  ModelConfig before, after;  // the model's config, and the one in the DeepSeek layout
  std::vector<std::string> notes;
  int64_t fold_qr_in = 0;       // > 0: fold W_qr (q_rope_in_dim of that width) into the query
  bool pad_nope = false;        // d_n 0 -> 1
  double query_scale = 1.0;     // softmax-scale ratio folded into the query rows
  bool to_interleaved = false;  // half -> interleaved rope rows
  double residual_scale = 1.0;  // deepseek-v3's eps 1e-6 rescaling of the residual stream
};
DeepseekLayoutPlan plan_deepseek_layout(const Model& m, DeepseekFormat f);
LayerWeights deepseek_layout_layer(const DeepseekLayoutPlan& p, LayerWeights layer);
// scale_embed false: only the final norm (the writer rescales the embedding through
// DeepseekExportOptions::embed_scale).
void deepseek_layout_globals(const DeepseekLayoutPlan& p, ModelWeights& w, bool scale_embed = true);

// Throws unless `c` is already in the DeepSeek layout for `f` (what the writers need).
void check_deepseek_layout(const ModelConfig& c, DeepseekFormat f, const std::string& source);

// RoPE of a head of `dim` coordinates that produces `inv_freq` (dim/2 values, relative
// tolerance 1e-6): the model's own (c.rope_theta, c.rope_scaling) when they do, else a
// geometric set w_j = w_0 theta^(-2j/dim) as a theta and a linear factor 1/w_0
// (keeping every k-th frequency of a larger head, from any offset). nullopt when
// neither does (e.g. a partial-RoPE selection).
struct RopeSpec {
  double theta = 10000.0;
  RopeScaling scaling;
};
std::optional<RopeSpec> rope_spec_for(const std::vector<double>& inv_freq, const ModelConfig& c, int64_t dim);

// Inverse frequencies of RoPE over `dim` coordinates (the formula of
// runtime/rope_table.h, in double).
std::vector<double> rope_frequencies(double theta, int64_t dim, const RopeScaling& scaling);

struct DeepseekExportOptions {
  std::string dtype = "F32";              // F32 | F16 | BF16 (GGUF: 1-D tensors stay F32)
  uint64_t max_shard_bytes = 5ull << 30;  // deepseek-v3: shard past this
  std::function<void(int64_t done, int64_t total)> progress;  // after each layer written
  // The embedding is written times this (the layout's residual rescale, applied in
  // chunks while writing instead of on a float32 copy of the whole table).
  double embed_scale = 1.0;
};

// Layer l of a model in the DeepSeek layout, produced when the writer needs it (the
// streaming writers hold one layer at a time).
using DeepseekLayerSource = std::function<LayerWeights(int64_t layer)>;

// The config.json write_deepseek_v3 writes for `c` (in the DeepSeek layout): model_type
// deepseek_v3, every layer dense (first_k_dense_replace = num_hidden_layers, no
// experts), num_key_value_heads = num_attention_heads, rope_interleave true, RoPE
// fields as the Llama config writes them, provenance under "mla_retrofit".
nlohmann::json deepseek_v3_config_json(const ModelConfig& c, const std::string& torch_dtype, const std::string& source);

// Writes a model already in the DeepSeek layout (check_deepseek_layout) as an HF
// DeepSeek-V3 directory into `dir` (existing, empty; callers wrap it in AtomicDir).
void write_deepseek_v3(const Model& m, const std::filesystem::path& dir, const DeepseekExportOptions& opts = {});
// The same with layers from `layer` (m's config, globals and tokenizer; m.weights.layers
// unused): tensors are written as they come, so memory holds one layer.
void write_deepseek_v3_layers(const Model& m, const DeepseekLayerSource& layer, const std::filesystem::path& dir,
                              const DeepseekExportOptions& opts = {});

// Writes a model already in the DeepSeek layout as a GGUF deepseek2 file (whole or
// not at all; an existing file only with `force`). Appends a note when the tokenizer
// cannot be written as GGUF metadata (see gguf_deepseek2.h).
void write_gguf_deepseek2(const Model& m, const std::filesystem::path& path, const DeepseekExportOptions& opts = {},
                          bool force = false, std::vector<std::string>* notes = nullptr);
void write_gguf_deepseek2_layers(const Model& m, const DeepseekLayerSource& layer, const std::filesystem::path& path,
                                 const DeepseekExportOptions& opts = {}, bool force = false,
                                 std::vector<std::string>* notes = nullptr);

// deepseek_layout + the writer, atomically: `out` is a directory (deepseek-v3) or a
// file (gguf), refused when it exists unless `force`. Returns the notes.
std::vector<std::string> export_deepseek(Model m, DeepseekFormat f, const std::string& out,
                                         const DeepseekExportOptions& opts = {}, bool force = false);

}  // namespace mlar
