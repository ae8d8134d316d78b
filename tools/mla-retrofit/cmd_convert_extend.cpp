#include "cmd_convert_extend.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "backend/device_built.h"
#include "backend/open_sequence.h"
#include "command.h"
#include "convert/absorb.h"
#include "convert/extend.h"
#include "convert/target.h"
#include "runtime/perplexity.h"
#include "train/finetune.h"
#include "util/atomic_output.h"
#include "util/error.h"
#include "util/utf8.h"

namespace mlar::cli {

struct ExtendArgs {
  std::string calib, eval_text, report, target;
  int64_t choice_tokens = 16384, choice_heldout_tokens = 8192, attention_tokens = 32768, value_refit_tokens = 65536;
  double value_refit_step = 0.5;
  std::string choice = "fast", device = "cpu";
  int64_t calib_tokens = 0, calib_len = 256, kv_lora_rank = 0, q_lora_rank = 0, ctx = 256, reservoir = 4096;
  std::string calib_mode = "sequential", qk_rope_dim = "auto", rope_strategy = "auto", freqfold = "auto",
              kv_method = "attn", latent_norm = "none", query_bias = "auto", rank_alloc = "uniform", nope_rotation = "mean", rope_pca = "complex", key_balance = "auto", qk_norm = "auto";
  double kv_budget = 0, holdout = 0.1, query_bias_ridge = 1e-6;
  bool keep_latent_scale = false;
  std::string latent_scale = "auto";
  int64_t distill_steps = 0, distill_batch = 8, distill_warmup = 10;
  double distill_lr = 3e-3;
  std::vector<CLI::Option*> options;  // every extend-only option, to refuse them with another mode
  CLI::Option* latent_norm_opt = nullptr;
  CLI::Option* rank_alloc_opt = nullptr;
};

namespace {

int64_t parse_auto_int(const std::string& v, const char* opt) {
  if (v == "auto") return 0;
  try {
    size_t pos = 0;
    const long long x = std::stoll(v, &pos);
    if (pos == v.size() && x > 0) return x;
  } catch (const std::exception&) {
  }
  fail("{} {}: expected a positive integer or auto", opt, v);
}

// The value `v` of option `opt` through `from_name` (an optional-returning parser),
// or "OPT V is not CHOICES".
template <class F>
auto named(F from_name, const std::string& v, const char* opt, const char* choices) {
  const auto x = from_name(v);
  if (!x) fail("{} {} is not {}", opt, v, choices);
  return *x;
}

ExtendOptions to_options(const ExtendArgs& a) {
  ExtendOptions o;
  o.calib_len = a.calib_len;
  o.calib_tokens = a.calib_tokens;
  o.calib_mode = named(calib_mode_from_name, a.calib_mode, "--calib-mode", "sequential or parallel");
  o.holdout = a.holdout;
  o.choice = named(choice_mode_from_name, a.choice, "--choice", "fast or exhaustive");
  o.choice_tokens = a.choice_tokens;
  o.choice_heldout_tokens = a.choice_heldout_tokens;
  o.attention_tokens = a.attention_tokens;
  o.value_refit_tokens = a.value_refit_tokens;
  o.value_refit_step = a.value_refit_step;
  o.device = parse_device(a.device, "--device");
  if (a.rope_strategy == "auto") {
    o.rope_strategies = {RopeStrategy::Uniform, RopeStrategy::RoRoPE};
  } else {
    const auto strat = rope_strategy_from_name(a.rope_strategy);
    if (!strat)
      fail("--rope-strategy {} is unknown (available: auto, {})", a.rope_strategy, rope_strategy_names());
    o.rope_strategy = *strat;
  }
  o.qk_rope_dim = parse_auto_int(a.qk_rope_dim, "--qk-rope-dim");
  o.freqfold = parse_auto_int(a.freqfold, "--freqfold");
  if (o.rope_strategies.empty() && o.rope_strategy != RopeStrategy::RoRoPE && a.freqfold == "auto") o.freqfold = 1;
  o.nope_rotation = named(nope_rotation_from_name, a.nope_rotation, "--nope-rotation", "none or mean");
  o.rope_pca = named(rope_pca_from_name, a.rope_pca, "--rope-pca", "real or complex");
  o.kv_lora_rank = a.kv_lora_rank;
  o.kv_budget = a.kv_budget;
  const auto method = kv_method_from_name(a.kv_method);
  if (!method) fail("--kv-method {} is unknown (available: {})", a.kv_method, kv_method_names());
  o.kv_method = *method;
  if (a.key_balance == "auto") {
    o.attn_key_balance = 0;
  } else {
    try {
      size_t pos = 0;
      o.attn_key_balance = std::stod(a.key_balance, &pos);
      if (pos != a.key_balance.size() || !(o.attn_key_balance > 0)) throw std::invalid_argument("");
    } catch (const std::exception&) {
      fail("--attn-key-balance {}: expected a positive number or auto", a.key_balance);
    }
  }
  o.rank_alloc = named(rank_alloc_from_name, a.rank_alloc, "--rank-alloc", "uniform or energy");
  o.q_lora_rank = a.q_lora_rank;
  o.latent_norm = named(latent_norm_from_name, a.latent_norm, "--latent-norm", "none or calibrated");
  o.scale_latent = !a.keep_latent_scale;
  if (a.latent_scale != "auto" && a.latent_scale != "linear" && a.latent_scale != "natural")
    fail("--latent-scale {} is not auto, linear or natural", a.latent_scale);
  o.latent_linear = a.latent_scale == "linear" || (a.latent_scale == "auto" && a.distill_steps == 0);
  o.query_bias = named(query_bias_from_name, a.query_bias, "--query-bias", "auto, fold, mean, drop or keep");
  o.query_bias_ridge = a.query_bias_ridge;
  o.qk_norm = named(qk_norm_mode_from_name, a.qk_norm, "--qk-norm", "auto, cached or calibrated");
  o.reservoir = a.reservoir;
  o.eval_ctx = a.ctx;
  return o;
}

}  // namespace

std::shared_ptr<ExtendArgs> register_extend_options(CLI::App* cmd) {
  auto a = std::make_shared<ExtendArgs>();
  const std::string g = "extend (compressed DeepSeek layout, MLA.md §4)";
  auto add = [&](CLI::Option* o) { a->options.push_back(o->group(g)); };
  add(cmd->add_option("--target", a->target,
                      "serve with this engine's fast MLA path: " + serve_target_names() +
                          ". Fixes what it accepts (docs/serving.md): vllm/sglang r 512 or 256 with d_r 64, llama.cpp "
                          "r 512 with d_r 64 (the KV budget follows: `inspect` shows it per target), transformers any "
                          "uniform shape (give --kv-budget); always uniform ranks and the calibrated latent norm. "
                          "Default: none (any shape; --format implies the latent norm and uniform ranks)"));
  add(cmd->add_option("--calib", a->calib, "calibration text (UTF-8); required for --rope-mode extend"));
  add(cmd->add_option("--device", a->device,
                      std::string("where the calibration computes (forward passes, second moments, candidate and stage "
                                  "perplexities; the eigen/SVD steps stay on the CPU): cpu, or cuda (an NVIDIA GPU; ") +
                          (cuda_built() ? "this build has the CUDA backend)" : "needs a build with -DMLAR_CUDA=ON)"))
          ->capture_default_str());
  add(cmd->add_option("--calib-tokens", a->calib_tokens, "calibration tokens for the statistics (0 = all)")
          ->check(CLI::NonNegativeNumber));
  add(cmd->add_option("--calib-len", a->calib_len, "calibration window length including BOS")->capture_default_str());
  add(cmd->add_option("--calib-mode", a->calib_mode,
                      "sequential: layer l calibrated through the converted layers < l (one pass over the layers, "
                      "carrying the calibration residual stream: N x hidden floats); parallel: all layers from the "
                      "source in one pass (holds every layer's statistics at once: (hidden+1)^2 doubles per layer, "
                      "134 MB at hidden 4096). Auto choices (--qk-rope-dim, --freqfold, --attn-key-balance), "
                      "--rank-alloc energy and --rope-strategy 2norm also need that parallel pass, and score each "
                      "candidate by converting every layer: give them explicitly for large models")
          ->capture_default_str());
  add(cmd->add_option("--qk-rope-dim", a->qk_rope_dim,
                      "d_r, the shared rope key size (even, <= head size), or auto: chosen by held-out perplexity "
                      "with --kv-budget (d/2 with --kv-lora-rank); auto needs the all-layer parallel pass (see "
                      "--calib-mode)")
          ->capture_default_str());
  add(cmd->add_option("--rope-strategy", a->rope_strategy,
                      "rope frequencies kept: rorope (TransMLA, with --freqfold), high, low, uniform, 2norm "
                      "(MHA2MLA partial RoPE, PCA across kv heads), or auto: uniform or rorope, chosen with d_r by "
                      "held-out perplexity (uniform wins on small heads, rorope at large rope_theta: "
                      "docs/compression.md)")
          ->capture_default_str());
  add(cmd->add_option("--freqfold", a->freqfold,
                      "rorope FreqFold F (a multiple of d/d_r dividing d/2) or auto (held-out perplexity; the "
                      "parallel pass)")
          ->capture_default_str());
  add(cmd->add_option("--nope-rotation", a->nope_rotation,
                      "what NoPE queries do about the rotation their keys lost: none (score q.k), or mean (score "
                      "q.E[R]k, the source attention's mean rotation per head and frequency)")
          ->capture_default_str());
  add(cmd->add_option("--rope-pca", a->rope_pca,
                      "PCA across kv heads per frequency: real (TransMLA / MHA2MLA) or complex (aligns the heads' "
                      "phases too; exact under RoPE all the same)")
          ->capture_default_str());
  add(cmd->add_option("--kv-lora-rank", a->kv_lora_rank, "r, the latent size of every layer (or use --kv-budget)"));
  add(cmd->add_option("--kv-budget", a->kv_budget,
                      "fraction in (0,1) of the GQA cache kept: r + d_r = round(F * 2 * n_kv * d) per layer"));
  add(cmd->add_option("--kv-method", a->kv_method,
                      "joint low rank of [k_nope; v]: attn (weighted by queries and W_o), pca, bkv-pca (TransMLA), "
                      "svd (MHA2MLA, weights only)")
          ->capture_default_str());
  add(a->rank_alloc_opt = cmd->add_option("--rank-alloc", a->rank_alloc, "uniform, or energy (spread the total rank by the spectra)")
          ->capture_default_str());
  add(cmd->add_option("--q-lora-rank", a->q_lora_rank, "factor W_q to this rank (0 = keep it full rank)")
          ->capture_default_str());
  add(a->latent_norm_opt = cmd->add_option("--latent-norm", a->latent_norm,
                      "none (no kv_a_layernorm), or calibrated (an RMSNorm weight fitted on calibration data)")
          ->capture_default_str());
  add(cmd->add_option("--latent-scale", a->latent_scale,
                      "with --latent-norm calibrated: linear (the latent brought below sqrt(eps), where the norm "
                      "barely divides by each token's rms: the exported model computes what the unnormalised one "
                      "did), natural (its own size: for a model trained further, e.g. --distill-steps or finetune, "
                      "whose optimiser steps would swamp down-scaled weights), or auto (linear unless "
                      "--distill-steps)")
          ->capture_default_str());
  add(cmd->add_flag("--keep-latent-scale", a->keep_latent_scale,
                    "with --latent-norm calibrated: fit the norm on the latent as the kv method gives it, without "
                    "first rescaling its coordinates for the norm (an ablation)"));
  add(cmd->add_option("--query-bias", a->query_bias,
                      "the query bias (Qwen2 sources; q_lora's intercept), which DeepSeek-V3 and GGUF deepseek2 cannot "
                      "hold: fold (W_q += b_q u^T, u the least-squares fit of the constant 1 by the attention input; "
                      "with q_lora, q_b fitted without an intercept), mean (u along the input's mean direction), drop, "
                      "keep (this project's MLA format holds it; export refuses it), or auto (fold with --latent-norm "
                      "calibrated, else keep). A removal is measured on the held-out calibration tail against the "
                      "bias kept (max |dlogit|, perplexity), reported and recorded for export")
          ->capture_default_str());
  add(cmd->add_option("--qk-norm", a->qk_norm,
                      "Qwen3 sources (per-head q_norm / k_norm before RoPE, not linear): cached (exact: each query "
                      "head scaled by its own 1/rms at run time, and each token caches its n_kv key scales beside the "
                      "latent: n_kv values per token more; this project's runtime only, export refuses it), "
                      "calibrated (the norms' per-token scales replaced by calibrated constants folded into W_q and "
                      "W_k: a plain DeepSeek-layout model that exports), or auto (calibrated with --latent-norm "
                      "calibrated, --target or --format, else cached)")
          ->capture_default_str());
  add(cmd->add_option("--query-bias-ridge", a->query_bias_ridge,
                      "fold: ridge of the least-squares fit, relative to tr(E[x x^T]) / hidden size")
          ->capture_default_str());
  add(cmd->add_option("--distill-steps", a->distill_steps,
                      "after the conversion, train every converted attention block for N updates to reproduce the "
                      "source block's output on the source's residual stream (finetune --mode layerwise --train "
                      "attn, on the calibration text); float32 copies of both models on the CPU: for small models "
                      "(0 = none)")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str());
  add(cmd->add_option("--distill-lr", a->distill_lr, "peak learning rate of --distill-steps (cosine to 10%)")
          ->capture_default_str());
  add(cmd->add_option("--distill-batch", a->distill_batch, "windows of --calib-len tokens per --distill-steps update")
          ->check(CLI::PositiveNumber)
          ->capture_default_str());
  add(cmd->add_option("--distill-warmup", a->distill_warmup, "linear warm-up updates of --distill-steps")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str());
  add(cmd->add_option("--eval-text", a->eval_text, "text to report perplexity on after each stage"));
  add(cmd->add_option("--ctx", a->ctx, "evaluation window length including BOS")->capture_default_str());
  add(cmd->add_option("--report", a->report, "write the conversion report as JSON to this file"));
  add(cmd->add_option("--holdout", a->holdout, "tail fraction of the calibration text held out for choosing")
          ->capture_default_str());
  add(cmd->add_option("--choice", a->choice,
                      "how the auto choices (--qk-rope-dim, --freqfold, --attn-key-balance) are searched: fast (a "
                      "walk from d_r = half the budget and key balance 0.1 that stops when the held-out perplexity "
                      "stops improving, on subsamples: --choice-tokens, --choice-heldout-tokens) or exhaustive "
                      "(every d_r, then every balance, on all statistics and held-out tokens; the table scripts)")
          ->capture_default_str());
  add(cmd->add_option("--choice-tokens", a->choice_tokens,
                      "fast choice: source statistics for the candidates from at most this many calibration "
                      "tokens (0 = all)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber));
  add(cmd->add_option("--choice-heldout-tokens", a->choice_heldout_tokens,
                      "fast choice: held-out tokens each candidate is scored on (0 = all held out)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber));
  add(cmd->add_option("--attention-tokens", a->attention_tokens,
                      "attention statistics (distance histogram, value spread) of each layer from at most this many "
                      "calibration tokens (0 = all the statistics' tokens)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber));
  add(cmd->add_option("--value-refit-tokens", a->value_refit_tokens,
                      "sequential calibration: refit each layer's value up-projection to the source heads' attention "
                      "outputs on at most this many calibration tokens (0 = no refit)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber));
  add(cmd->add_option("--value-refit-step", a->value_refit_step,
                      "value refit: how far each head's output product moves toward the fit (1 = all the way)")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 1.0)));
  add(cmd->add_option("--attn-key-balance", a->key_balance,
                      "attn: multiplier of the key part of the metric, or auto (1, 0.3, 0.1, 0.03, 0.01 by held-out "
                      "perplexity; needs the all-layer parallel pass, see --calib-mode)")
          ->capture_default_str());
  add(cmd->add_option("--reservoir", a->reservoir, "calibration samples per layer for the RMSNorm fits")
          ->capture_default_str());
  return a;
}

void check_extend_args(const ExtendArgs& a, const std::string& rope_mode, bool layout_given) {
  if (rope_mode != "extend") {
    for (const CLI::Option* o : a.options)
      if (o->count() > 0) fail("{} applies to --rope-mode extend (not {})", o->get_name(), rope_mode);
    return;
  }
  if (layout_given)
    fail("--num-kv-heads / --head-dim apply to --rope-mode repeat (extend keeps the source's kv heads and head size)");
  if (a.calib.empty()) fail("--rope-mode extend needs calibration text: --calib FILE");
  if (!a.target.empty() && !serve_target_from_name(a.target))
    fail("--target {} is unknown (available: {})", a.target, serve_target_names());
  to_options(a);  // names and numbers
}

namespace {

// --target, or --format without one: what the DeepSeek formats need (MLA.md §5).
void make_exportable(const ModelConfig& c, const ExtendArgs& a, const std::string& export_format, ExtendOptions& o) {
  const std::string why = !a.target.empty() ? "--target " + a.target : "--format " + export_format;
  if (a.latent_norm_opt->count() > 0 && o.latent_norm == LatentNorm::None)
    fail("--latent-norm none conflicts with {}: every DeepSeek loader applies kv_a_layernorm, so the exported model "
         "needs the calibrated latent norm (drop --latent-norm)",
         why);
  if (a.rank_alloc_opt->count() > 0 && o.rank_alloc != RankAlloc::Uniform)
    fail("--rank-alloc {} conflicts with {}: the DeepSeek formats hold one kv_lora_rank for all layers", a.rank_alloc,
         why);
  if (c.qk_norm && o.qk_norm == QkNormMode::Cached)
    fail("--qk-norm cached conflicts with {}: its per-token key scales and per-head query scales have no place in "
         "the DeepSeek formats; drop --qk-norm (auto folds calibrated constants, which export)",
         why);
  if (!a.target.empty())
    apply_target(c, *serve_target_from_name(a.target), o);
  else
    o.latent_norm = LatentNorm::Calibrated;
  if (export_format == "gguf") o.fold_kv_bias = true;  // GGUF deepseek2 has no bias tensors
  o.standard_rope = true;
}

}  // namespace

namespace {

// --distill-steps: layer-wise distillation of the converted attention blocks against
// the source's (train/finetune.h), on the calibration ids. The CPU trainer computes in
// float32, so both models are widened; the result goes back to the converted model's
// weight dtype. Appends a "distilled" stage (and its time) to the report.
void distill(const Model& gqa, Model& m, const ExtendArgs& a, const ExtendOptions& o,
             const std::vector<int32_t>& calib, bool quiet, ExtendReport& rep) {
  const auto t0 = std::chrono::steady_clock::now();
  const DType keep = weight_dtype(m.weights);
  const int64_t need = 4 * (parameter_count(gqa.weights) + parameter_count(m.weights));
  const int64_t have = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  if (need > have / 2)
    fail("--distill-steps: the CPU trainer needs float32 copies of the source and the converted model ({:.1f} GiB), "
         "more than half of this machine's {:.1f} GiB; distil large models on GPUs (the PyTorch package, "
         "docs/finetune.md)",
         static_cast<double>(need) / (1 << 30), static_cast<double>(have) / (1 << 30));
  Model teacher = gqa;
  materialize_f32(teacher.weights);
  materialize_f32(m.weights);
  train::FinetuneOptions fo;
  fo.mode = train::FinetuneMode::Layerwise;
  fo.scope = train::TrainScope::Attention;
  fo.steps = a.distill_steps;
  fo.lr = a.distill_lr;
  fo.warmup = std::min(a.distill_warmup, a.distill_steps);
  fo.batch = a.distill_batch;
  fo.seq = o.calib_len;
  fo.seed = 1;
  fo.clip = 1.0;
  fo.progress_every = std::max<int64_t>(1, a.distill_steps / 10);
  fo.quiet = quiet;
  if (!quiet) fmt::print(stderr, "extend: distilling the attention blocks, {} updates of {} x {} tokens\n", fo.steps, fo.batch, fo.seq);
  const train::FinetuneResult r = train::finetune(m, &teacher, calib, {}, fo, {});
  cast_matrices(m.weights, keep);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ExtendStage st;
  st.name = "distilled";
  st.kv_bytes_per_token = rep.stages.empty() ? 0 : rep.stages.back().kv_bytes_per_token;
  if (!o.eval_ids.empty()) {
    PerplexityOptions po;
    po.ctx = o.eval_ctx;
    SessionOptions so;
    so.max_tokens = o.eval_ctx;
    st.ppl = perplexity(*open_sequence(m, so, o.device), o.eval_ids, po).ppl;
  }
  if (!quiet)
    fmt::print(stderr, "extend: stage {:<15} {}  KV {} bytes/token (distilled in {:.1f}s, last loss {:.4g})\n", st.name,
               st.ppl ? fmt::format("perplexity {:.4f}", *st.ppl) : std::string("(no --eval-text)"),
               st.kv_bytes_per_token, secs, r.losses.empty() ? 0.0 : r.losses.back());
  rep.stages.push_back(st);
  rep.timings.emplace_back("distill", secs);
  rep.seconds += secs;
}

}  // namespace

Model run_extend(const Model& gqa, const ExtendArgs& a, bool quiet, bool absorb_after, const std::string& export_format) {
  ExtendOptions o = to_options(a);
  o.progress = !quiet;
  if (!a.target.empty() || !export_format.empty()) make_exportable(gqa.config, a, export_format, o);
  check_extend_options(gqa.config, o);  // before reading and tokenizing anything
  require_device_built(o.device, gqa.source);
  if (!a.report.empty()) check_output_free(a.report, true);
  const Tokenizer& tok = require_tokenizer(gqa);
  const auto t_tok = std::chrono::steady_clock::now();
  const std::vector<int32_t> calib = tok.encode(read_utf8_file(a.calib));
  if (calib.empty()) fail("{}: calibration text has no tokens", a.calib);
  if (!a.eval_text.empty()) {
    o.eval_ids = tok.encode(read_utf8_file(a.eval_text));
    if (o.eval_ids.empty()) fail("{}: evaluation text has no tokens", a.eval_text);
  }
  const double tokenize_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_tok).count();
  if (!quiet) fmt::print(stderr, "extend: tokenized the calibration (and evaluation) text in {:.1f}s\n", tokenize_s);
  ExtendReport rep;
  Model m = convert_extend(gqa, o, calib, &rep);
  if (a.distill_steps > 0) distill(gqa, m, a, o, calib, quiet, rep);
  if (absorb_after) {
    if (!quiet) fmt::print(stderr, "convert: absorbing the up-projections\n");
    absorb(m);
  }
  if (!a.report.empty()) {
    nlohmann::json j = rep.to_json();
    j["timings"]["tokenize"] = tokenize_s;
    j["model"] = gqa.source;
    if (!a.target.empty()) j["target"] = a.target;
    j["calib_text"] = a.calib;
    j["eval_text"] = a.eval_text.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.eval_text);
    j["mla"] = mla_config_to_json(*m.config.mla);
    AtomicFile f(a.report, true);
    {
      std::ofstream out(f.tmp_path());
      out << j.dump(2) << "\n";
      if (!out) fail("{}: cannot write the report", a.report);
    }
    f.commit();
  }
  return m;
}

}  // namespace mlar::cli
