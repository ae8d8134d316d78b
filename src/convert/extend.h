// The compressed GQA -> MLA retrofit, RoPE mode `extend` (MLA.md §4): DeepSeek layout,
// one shared rope key of d_r values (n_r = 1), a latent of r values carrying the NoPE
// keys and the values, d_n = d_v = d, driven by calibration statistics.
//
// Per layer (extend_layer.h): S = E[[x;1][x;1]^T] of the attention input (streamed,
// calib_stats.h) -> RoPE separation (rope_split.h) -> joint low rank of
// [k_nope ; v] (kv_lowrank.h) -> optional latent RMSNorm and q_lora (norm_fit.h).
//
// Calibration modes:
//   sequential (default)  layer l's S comes from the model whose layers < l are
//                         already converted. One pass over the layers: the residual
//                         stream of every calibration window is carried from layer
//                         to layer (runtime/carried_states.h); layer l's statistics are taken
//                         from it, layer l is converted, and the stream advances
//                         through the converted layer (O(L N) layer evaluations for
//                         N tokens);
//   parallel              every S from the source model in one pass.
// A parallel (source) pass is also made, once, when something must be chosen from
// statistics of every layer: the d_r / freqfold candidates and attn's key balance
// when not given (each candidate converted from the source statistics and scored by
// perplexity on the held-out tail of the calibration text; which candidates, and on how
// many tokens: ExtendOptions::choice, extend_choice.h), --rank-alloc energy, and the
// 2norm frequencies (one table for all layers).
// Memory: the statistics are (D+1)^2 doubles per layer (all layers for a parallel
// pass: 134 MB per layer at D = 4096; one layer at a time in sequential mode with
// fixed choices) plus, for the RMSNorm fits, a fixed-size reservoir of inputs; the
// carried states of sequential mode are N x D floats. Converted layers are kept in
// the source's weight dtype (the dtype of layer 0's wq: BF16 for a BF16 model), the
// source's tensors are read as float32 one layer at a time.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "convert/extend_choice.h"
#include "convert/kv_lowrank.h"
#include "convert/qk_norm_fold.h"
#include "convert/query_bias.h"
#include "convert/rope_split.h"
#include "convert/value_refit.h"
#include "model/model.h"
#include "tensor/device.h"

namespace mlar {

enum class CalibMode { Sequential, Parallel };
enum class LatentNorm { None, Calibrated };
enum class RankAlloc { Uniform, Energy };
// What a NoPE query does about the rotation its key part lost (extend_layer.h):
// none (score q . k, TransMLA / MHA2MLA) or mean (q . E_p[R] k, from the source
// attention's distance histogram).
enum class NopeRotation { None, Mean };
// The PCA across kv heads in the rope separation (rope_split.h): real (TransMLA,
// MHA2MLA) or complex (phases aligned too; commutes with RoPE all the same).
enum class RopePca { Real, Complex };
const char* calib_mode_name(CalibMode m);
const char* latent_norm_name(LatentNorm n);
const char* rank_alloc_name(RankAlloc a);
const char* nope_rotation_name(NopeRotation n);
const char* rope_pca_name(RopePca p);
std::optional<RopePca> rope_pca_from_name(const std::string& s);
std::optional<CalibMode> calib_mode_from_name(const std::string& s);
std::optional<LatentNorm> latent_norm_from_name(const std::string& s);
std::optional<RankAlloc> rank_alloc_from_name(const std::string& s);
std::optional<NopeRotation> nope_rotation_from_name(const std::string& s);

struct ExtendOptions {
  // Calibration (windows as calib_run.h).
  int64_t calib_len = 256;      // window length including BOS
  int64_t calib_tokens = 0;     // statistics from at most this many tokens; 0 = all not held out
  CalibMode calib_mode = CalibMode::Sequential;
  double holdout = 0.1;         // tail fraction of the calibration ids held out when choosing
  // How the held-out choices are searched (extend_choice.h): fast (a walk with early
  // stopping, scored on a subsample) or exhaustive (every candidate on all of it).
  ChoiceMode choice = ChoiceMode::Fast;
  // Fast only (0 = no limit): the source statistics the candidates are converted from
  // come from at most this many of the statistics tokens (sequential mode; the
  // parallel mode's final conversion reads them too, so it uses all), and each
  // candidate is scored on at most choice_heldout_tokens of the held-out ids.
  int64_t choice_tokens = 16384;
  int64_t choice_heldout_tokens = 8192;
  // RoPE separation.
  RopeStrategy rope_strategy = RopeStrategy::Uniform;
  // Several strategies to choose among by held-out perplexity, with d_r (non-empty:
  // rope_strategy is ignored). `--rope-strategy auto` = {uniform, rorope}: uniform
  // keeps every other frequency (best where the head is small, stories260K), rorope
  // folds neighbouring frequencies (best at rope_theta 500000, llama3ish:
  // docs/compression.md). A strategy that cannot take a candidate d_r (rorope: d_r
  // dividing d) or --freqfold > 1 (all but rorope) just offers no candidate there.
  std::vector<RopeStrategy> rope_strategies;
  int64_t qk_rope_dim = 0;      // d_r; 0 = choose (by held-out perplexity with a budget, else d/2)
  int64_t freqfold = 0;         // rorope FreqFold; 0 = auto (by held-out perplexity); others: 1
  NopeRotation nope_rotation = NopeRotation::Mean;
  RopePca rope_pca = RopePca::Complex;
  // Latent.
  int64_t kv_lora_rank = 0;     // r of every layer (or the total / L with --rank-alloc energy)
  double kv_budget = 0;         // in (0,1): r + d_r = round(budget * 2 n_kv d) per layer
  KvMethod kv_method = KvMethod::Attn;
  double attn_key_balance = 0;  // multiplies the attn key metric; 0 = auto (held-out perplexity)
  RankAlloc rank_alloc = RankAlloc::Uniform;
  int64_t q_lora_rank = 0;      // 0 = full-rank W_q
  LatentNorm latent_norm = LatentNorm::None;
  bool scale_latent = true;  // with a calibrated latent norm: rescale the latent first (scale_latent_for_norm)
  bool latent_linear = true; // ... and may bring it below sqrt(eps), where the norm is nearly linear
  int64_t reservoir = 4096;     // calibration inputs kept per layer for the RMSNorm fits
  // The query bias (Qwen2 sources; q_lora's intercept), which the DeepSeek formats
  // cannot hold (query_bias.h). When one is removed, the tail of the calibration text
  // is held out (as for choosing) and the removal's cost measured on it against the
  // same conversion with the bias kept (ExtendReport::query_bias, MlaConfig::query_bias).
  QueryBias query_bias = QueryBias::Auto;
  // Qwen3 sources: how the per-head q/k RMSNorms are carried (qk_norm_fold.h): cached
  // (exact score scales, n_kv values per token more, this project's runtime only) or
  // calibrated (constants folded into W_q / W_k: exportable); auto = calibrated with
  // --latent-norm calibrated (the exportable conversions), cached otherwise.
  QkNormMode qk_norm = QkNormMode::Auto;
  double query_bias_ridge = 1e-6;  // fold: ridge relative to tr(E[x x^T]) / D
  // Also fold the latent and rope-key biases (from b_k, b_v) the same way: GGUF
  // deepseek2 and vLLM / SGLang's DeepSeek layers load none (query_bias.h).
  bool fold_kv_bias = false;
  // Choose only rope key sizes whose frequencies the DeepSeek formats derive from
  // rope_theta / rope_scaling (set by --target and --format: exportable conversions).
  bool standard_rope = false;
  // The attention statistics (distance histogram and value spread, attn_stats.h) from
  // the first windows up to this many tokens per layer (0 = all the statistics' tokens);
  // docs/compression.md, "Conversion time", for the measurement behind the default.
  int64_t attention_tokens = 32768;
  // Sequential mode: refit each layer's W_uv to the source heads' attention outputs
  // (value_refit.h) from this many tokens, whole windows spread over the calibration text (0 = off).
  int64_t value_refit_tokens = 65536;
  // How far each head's W_o[h] W_uv[h] moves from the conversion's toward the fit (1:
  // all the way); docs/compression.md, "Value refit", for the measurement.
  double value_refit_step = 0.5;
  // Sequential mode on the CPU: carried states above this many bytes go to a mapped
  // temporary file instead of memory (runtime/carried_states.h).
  int64_t carried_max_in_memory = int64_t{1} << 30;
  // Where the calibration's forward passes, second moments and perplexities run (the
  // eigen/SVD steps stay on the CPU): Cuda needs a build with -DMLAR_CUDA=ON and a GPU.
  Device device = Device::Cpu;
  // Evaluation after each stage (empty: no perplexities).
  std::vector<int32_t> eval_ids;
  int64_t eval_ctx = 256;
  bool progress = true;  // lines on stderr
};

// The query-bias mode after `auto`: fold with --latent-norm calibrated (the only
// exportable conversions), keep otherwise.
QueryBias resolve_query_bias(const ExtendOptions& o);

// The q/k norm mode after `auto` (Cached or Calibrated).
QkNormMode resolve_qk_norm(const ExtendOptions& o);

// Values cached per layer for a budget: round(budget * 2 * n_kv * d).
int64_t budget_values(const ModelConfig& c, double budget);

// The d_r tried when --qk-rope-dim is chosen: d/8, d/4, d/2, 3d/4, d that are even,
// >= 2, below `total` (the per-layer budget; 0 = no limit) and, for rorope, divide d.
std::vector<int64_t> rope_dim_candidates(const ModelConfig& c, RopeStrategy s, int64_t total);

// Checks options against the source config before any work; throws mlar::Error
// naming the option (rank larger than the width, rope dim odd or not dividing the
// head, budget outside (0,1), ...).
void check_extend_options(const ModelConfig& c, const ExtendOptions& o);

struct ExtendStage {
  std::string name;  // source | rope_separated | low_rank | final
  std::optional<double> ppl;
  int64_t kv_bytes_per_token = 0;  // float32 cache, all layers
};

// The strategies an ExtendOptions offers: rope_strategies, or rope_strategy alone.
std::vector<RopeStrategy> rope_strategy_list(const ExtendOptions& o);

struct ExtendCandidate {
  RopeStrategy rope_strategy = RopeStrategy::Uniform;
  int64_t qk_rope_dim = 0, freqfold = 1, kv_lora_rank = 0;
  double key_balance = 0;  // attn only
  double heldout_ppl = 0;
  double seconds = 0;      // its conversion and held-out pass
};

// Seconds of one layer's sequential calibration.
struct ExtendLayerTime {
  double stats = 0, convert = 0, refit = 0, advance = 0;
};

// Bytes the calibration holds (0: not held).
struct ExtendCalibMemory {
  int64_t second_moment = 0;   // one layer's S ((D+1)^2 doubles, accumulated in place)
  int64_t reservoir = 0;       // one layer's RMSNorm-fit samples (reservoir x D floats)
  int64_t histogram = 0;       // one layer's attention statistics
  int64_t carried_states = 0;  // sequential: the residual stream of every window (N x D floats)
  bool carried_file_backed = false;
  int64_t source_pass = 0;     // the parallel pass: every layer's statistics at once
};

struct ExtendReport {
  ExtendOptions options;  // as given (eval_ids cleared)
  RopeStrategy rope_strategy = RopeStrategy::Uniform;  // as used (the choice's, with several)
  int64_t qk_rope_dim = 0, freqfold = 1;
  double key_balance = 0;                       // attn's, as used
  std::vector<int64_t> layer_rank;              // r per layer
  std::vector<double> layer_rope_captured;      // fraction of E|k|^2 in the rope key
  std::vector<double> layer_latent_captured;    // fraction of the method's objective kept
  std::vector<int64_t> kept_freqs;              // source pair index of each rope pair (layer 0)
  std::vector<ExtendCandidate> candidates;      // held-out selection (empty if none)
  std::vector<ExtendStage> stages;
  int64_t calib_tokens = 0, heldout_tokens = 0, calib_windows = 0;
  int64_t choice_calib_tokens = 0, choice_heldout_tokens = 0;  // what the choice read (0: no choice)
  int64_t calib_passes = 0;
  double seconds = 0;
  std::vector<std::pair<std::string, double>> timings;  // stage name -> seconds, in order
  std::vector<ExtendLayerTime> layer_times;             // sequential mode
  std::vector<ValueRefitResult> value_refit;            // per layer, with value_refit_tokens (sequential mode)
  ExtendCalibMemory memory;
  QueryBias query_bias_mode = QueryBias::Keep;   // as resolved
  QueryBiasRemoval query_bias;                   // measured cost (empty when nothing was removed)
  std::vector<double> layer_query_bias_residual; // rho(u) per layer (query_bias.h), when removed
  std::vector<double> layer_kv_bias_residual;    // rho(u) per layer of the latent / rope-key bias fold, when made
  std::vector<RopePlan> plans;  // per layer (for tests and reports)
  // Qwen3 sources (qk_norm_fold.h): the mode as resolved, and per layer the constants
  // tau_h (per query head) and sigma_j (per kv head) folded into W_q / W_k.
  QkNormMode qk_norm_mode = QkNormMode::Auto;
  std::vector<std::vector<double>> layer_q_norm_scale, layer_k_norm_scale;

  int64_t kv_bytes_before() const;
  int64_t kv_bytes_after() const;
  nlohmann::json to_json() const;
};

// Converts a GQA model (not consumed). calib_ids: the tokenized calibration text
// (no BOS). The result has format "mla", config.mla of rope mode extend.
Model convert_extend(const Model& gqa, const ExtendOptions& opts, const std::vector<int32_t>& calib_ids,
                     ExtendReport* report = nullptr);

}  // namespace mlar
