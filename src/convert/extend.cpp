#include "convert/extend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "backend/open_carried_states.h"
#include "backend/open_sequence.h"
#include "convert/extend_calib.h"
#include "convert/extend_layer.h"
#include "convert/norm_fit.h"
#include "convert/value_refit.h"
#include "convert/rank_alloc.h"
#include "io/deepseek_export.h"
#include "ops/threads.h"
#include "runtime/compare.h"
#include "runtime/mla_attention.h"
#include "tensor/spill.h"
#include "util/error.h"
#include "util/progress.h"

namespace mlar {
namespace {

using Clock = std::chrono::steady_clock;

// attn key balances tried with --attn-key-balance auto (held-out perplexity).
const std::vector<double> kKeyBalances = {1.0, 0.3, 0.1, 0.03, 0.01};

// Everything every layer's conversion shares once d_r and freqfold are fixed.
struct Setup {
  SplitOptions split;  // attention pointer set per layer
  QkNormMode qk = QkNormMode::Cached;  // resolved (read for qk_norm sources only)
  KvMethod method = KvMethod::Attn;
  double key_balance = 1.0;
};

// One held-out candidate of the rope separation.
struct RopeCand {
  RopeStrategy strategy = RopeStrategy::Uniform;
  int64_t d_r = 0, freqfold = 1;
};

struct LayerOut {
  MlaLayerWeights rope_only;  // full rank (only when stages are evaluated)
  MlaLayerWeights low_rank;   // rank r before the RMSNorm fits (idem, when they are on)
  MlaLayerWeights final;
  MlaLayerWeights with_bias;  // final with the query bias kept (only when one was removed)
  RopePlan plan;
  double latent_captured = 0;
  double bias_residual = 0;   // rho(u) of the removal (query_bias.h)
  std::vector<double> q_norm_scale, k_norm_scale;  // Qwen3: tau_h, sigma_j (qk_norm_fold.h)
  double kv_bias_residual = 0;  // rho(u) of the latent / rope-key bias fold (0: none)
};

// Value refit: the most latent features one least-squares fit reads (value_refit.h).
constexpr int64_t kRefitMaxFeatures = 2048;

// Whether the sequential calibration refits a layer of rank r (value_refit.h): not at
// full rank Z, where the low-rank step dropped nothing.
bool refit_on(const ExtendOptions& o, int64_t r, int64_t Z) {
  return o.calib_mode == CalibMode::Sequential && o.value_refit_tokens > 0 && r < Z;
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The new 2-D tensors of a converted layer in `dtype` (the source's weight dtype);
// views (W_o, shared with the source) and vectors stay as they are.
void store_as(MlaLayerWeights& w, DType dtype) {
  for (TypedTensor* t : {&w.wq, &w.wq_a, &w.wq_b, &w.wqr, &w.w_dkv, &w.w_kr, &w.w_uk, &w.w_uv, &w.wo})
    if (!t->empty() && !t->is_view() && t->ndim() >= 2 && t->dtype != dtype) *t = t->cast(dtype);
}

// Then, when `spill`, into file-backed mappings (tensor/spill.h): a converted layer
// costs no heap while the next ones are converted, so memory does not grow with depth.
void store_as(LayerOut& l, DType dtype, bool spill) {
  for (MlaLayerWeights* w : {&l.final, &l.rope_only, &l.low_rank, &l.with_bias}) {
    store_as(*w, dtype);
    if (!spill) continue;
    for (TypedTensor* t : {&w->wq, &w->wq_a, &w->wq_b, &w->wqr, &w->w_dkv, &w->w_kr, &w->w_uk, &w->w_uv, &w->wo})
      if (!t->empty() && !t->is_view() && t->ndim() >= 2) *t = spill_to_file(*t);
  }
}

void say(const ExtendOptions& o, const std::string& s) {
  if (o.progress) fmt::print(stderr, "extend: {}\n", s);
}

bool norms_on(const ExtendOptions& o) { return o.latent_norm == LatentNorm::Calibrated || o.q_lora_rank > 0; }

// The source layer as the split reads it: Qwen3's norms folded (qk_norm_fold.h) into
// `buf`, else the layer itself.
const LayerWeights& linear_layer(const Model& src, int64_t l, const la::Mat& S, LinearQk& buf) {
  const LayerWeights& L = src.weights.layers[static_cast<size_t>(l)];
  if (!src.config.qk_norm) return L;
  buf = linear_qk_layer(src.config, L, S);
  return buf.layer;
}

SplitLayer split_of(const Model& src, const LayerWeights& L, const LayerStats& st, const Setup& s) {
  SplitOptions so = s.split;
  so.attention = st.attention.empty() ? nullptr : &st.attention;
  return split_layer(src.config, L, st.S, so);
}

// Whether layer weights `w` (before any q_lora factoring) leave a query bias to remove
// under `o`: a non-zero b_q, or q_lora's intercept.
bool removes_query_bias(const ExtendOptions& o, bool has_bias) {
  return resolve_query_bias(o) != QueryBias::Keep && (has_bias || o.q_lora_rank > 0);
}

bool source_has_query_bias(const Model& m) {
  for (const auto& L : m.weights.layers)
    if (any_nonzero(L.bq)) return true;
  return false;
}

LayerOut convert_layer(const Model& src, int64_t l, const LayerStats& st, const Setup& s, int64_t rank,
                       const ExtendOptions& o, bool keep_stages) {
  const ModelConfig& c = src.config;
  LinearQk lin;
  const LayerWeights& L = linear_layer(src, l, st.S, lin);
  const SplitLayer split = split_of(src, L, st, s);
  const DistanceHistogram* attn = st.attention.empty() ? nullptr : &st.attention;
  const KvBasis basis = kv_basis(s.method, kv_problem(c, L, split, st.S, s.method, s.key_balance, attn));
  const la::Mat A = kv_down(basis, rank), B = kv_up(basis, rank);
  LayerOut out;
  out.plan = split.plan;
  double kept = 0, total = 0;
  for (size_t k = 0; k < basis.energy.size(); ++k) {
    total += basis.energy[k];
    if (static_cast<int64_t>(k) < rank) kept += basis.energy[k];
  }
  out.latent_captured = total > 0 ? kept / total : 1.0;
  out.final = assemble_layer(c, L, split, &A, &B);
  if (keep_stages) out.rope_only = assemble_layer(c, L, split, nullptr, nullptr);
  if (c.qk_norm && s.qk == QkNormMode::Cached)
    for (MlaLayerWeights* w : {&out.final, &out.rope_only})
      if (!w->w_dkv.empty()) add_score_scales(*w, c, src.weights.layers[static_cast<size_t>(l)], lin);
  out.q_norm_scale = lin.tau;
  out.k_norm_scale = lin.sigma;
  const QueryBias qb = resolve_query_bias(o);
  if (o.fold_kv_bias) {
    const std::vector<double> u = bias_fold_direction(st.S, QueryBias::Fold, o.query_bias_ridge);
    if (fold_kv_biases(out.final, u)) {
      out.kv_bias_residual = bias_residual(st.S, u);
      say(o, fmt::format("layer {}: latent / rope-key biases folded into the weights (rho {:.3g})", l,
                         out.kv_bias_residual));
    }
  }
  const bool has_bias = any_nonzero(out.final.bq);
  const bool remove = removes_query_bias(o, has_bias);
  // Without the norm fits: remove the bias (full-rank W_q) and return.
  if (!norms_on(o)) {
    if (remove) {
      out.with_bias = out.final;
      const std::vector<double> u = bias_fold_direction(st.S, qb, o.query_bias_ridge);
      out.bias_residual = bias_residual(st.S, u);
      fold_query_bias(out.final, u);
    }
    return out;
  }
  if (keep_stages) out.low_rank = out.final;
  if (!st.samples) fail("extend: layer {}: no calibration samples for the RMSNorm fits", l);
  if (o.latent_norm == LatentNorm::Calibrated) {
    LatentScale ls;
    if (o.scale_latent) {
      ls = scale_latent_for_norm(out.final, *st.samples, c.rms_norm_eps, o.latent_linear);
      say(o, fmt::format("layer {}: latent rescaled for the norm, alpha {}, rms {} sqrt(eps)", l, ls.alpha,
                         ls.kappa == 0 ? std::string("as it was, not") : fmt::format("{:g}", ls.kappa)));
    }
    out.final.kv_norm = fit_latent_norm(out.final, *st.samples, c.rms_norm_eps, ls.sigma);
  }
  if (remove) {
    out.with_bias = out.final;
    const std::vector<double> u = bias_fold_direction(st.S, qb, o.query_bias_ridge);
    out.bias_residual = has_bias ? bias_residual(st.S, u) : 0.0;
    // q_lora with fold: q_b is the least-squares fit of the biased query without an
    // intercept (the fold in RMSNorm(q_a x) space); mean / drop act on W_q first.
    if (o.q_lora_rank == 0 || qb != QueryBias::Fold) fold_query_bias(out.final, u);
  }
  if (o.q_lora_rank > 0) {
    factor_query(out.final, o.q_lora_rank, st.S, *st.samples, c.rms_norm_eps, /*intercept=*/!remove);
    if (remove) factor_query(out.with_bias, o.q_lora_rank, st.S, *st.samples, c.rms_norm_eps, true);
  }
  return out;
}

// The source pair index of each rope pair, for the whole model (MlaConfig holds one
// frequency table): rorope every (d/d_r)-th, partial strategies their choice.
std::vector<int64_t> model_rope_freqs(const Model& src, const Setup& s, const std::vector<LayerStats>* st) {
  const ModelConfig& c = src.config;
  const RopeStrategy k = s.split.strategy;
  if (k == RopeStrategy::RoRoPE) {
    std::vector<int64_t> out;
    for (int64_t t = 0; t < s.split.d_r / 2; ++t) out.push_back(t * (c.head_dim / s.split.d_r));
    return out;
  }
  if (k != RopeStrategy::TwoNorm) return choose_partial_freqs(c, k, s.split.d_r, {});
  if (!st) fail("extend: --rope-strategy {} needs source statistics", rope_strategy_name(k));
  std::vector<RopeStats> rs;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerStats& ls = (*st)[static_cast<size_t>(l)];
    LinearQk buf;
    rs.push_back(layer_rope_stats(c, linear_layer(src, l, ls.S, buf), ls.S, true));
  }
  std::vector<const RopeStats*> ptrs;
  for (const auto& r : rs) ptrs.push_back(&r);
  return choose_partial_freqs(c, k, s.split.d_r, ptrs);
}

MlaConfig mla_config_for(const ModelConfig& c, const Setup& s, const std::vector<int64_t>& ranks, bool latent_norm,
                         int64_t q_lora) {
  MlaConfig m = extend_mla_config(c, s.split.d_r);
  m.rope_inv_freq = rope_inv_freq_table(c, s.split.d_r, s.split.kept);
  m.kv_lora_rank = *std::max_element(ranks.begin(), ranks.end());
  if (std::any_of(ranks.begin(), ranks.end(), [&](int64_t r) { return r != ranks.front(); })) m.layer_kv_lora_rank = ranks;
  m.latent_norm = latent_norm;
  m.q_lora_rank = q_lora;
  if (c.qk_norm && s.qk == QkNormMode::Cached) {
    m.qk_scale_dim = c.head_dim;
    m.qk_scale_kv_heads = c.num_kv_heads;
  }
  return m;
}

ModelConfig with_mla(const ModelConfig& c, const MlaConfig& m) {
  ModelConfig out = c;
  out.mla = m;
  return out;
}

std::vector<std::vector<double>> layer_spectra(const Model& src, const Setup& s, const std::vector<LayerStats>& st) {
  std::vector<std::vector<double>> out;
  for (int64_t l = 0; l < src.config.num_layers; ++l) {
    const LayerStats& ls = st[static_cast<size_t>(l)];
    LinearQk buf;
    const LayerWeights& Ll = linear_layer(src, l, ls.S, buf);
    const SplitLayer split = split_of(src, Ll, ls, s);
    out.push_back(
        kv_basis(s.method, kv_problem(src.config, Ll, split, ls.S, s.method,
                                      s.key_balance, ls.attention.empty() ? nullptr : &ls.attention))
            .energy);
  }
  return out;
}

std::vector<MlaLayerWeights> pick(std::vector<LayerOut>& layers, MlaLayerWeights LayerOut::*m) {
  std::vector<MlaLayerWeights> out;
  for (auto& l : layers) out.push_back(std::move(l.*m));
  return out;
}

int64_t kv_bytes(const ModelConfig& c) {
  int64_t v = 0;
  for (int64_t l = 0; l < c.num_layers; ++l) v += c.kv_values_per_token_layer(l);
  return v * 4;
}

Model assemble_model(const Model& gqa, const MlaConfig& cfg, std::vector<MlaLayerWeights> layers) {
  return mla_model(gqa, with_mla(gqa.config, cfg), std::move(layers));
}

}  // namespace

Model convert_extend(const Model& gqa, const ExtendOptions& o, const std::vector<int32_t>& calib_ids,
                     ExtendReport* report) {
  const auto t0 = Clock::now();
  const ModelConfig& c = gqa.config;
  check_extend_options(c, o);
  c.validate(gqa.source);
  check_weight_shapes(c, gqa.weights, gqa.source);
  const int64_t L = c.num_layers, Z = 2 * c.kv_dim(), d = c.head_dim;
  ExtendReport rep;
  rep.options = o;
  rep.options.eval_ids.clear();

  // The (d_r, freqfold) candidates.
  // A budget counts everything cached: with --qk-norm cached also the n_kv key scales.
  const int64_t scales = c.qk_norm && resolve_qk_norm(o) == QkNormMode::Cached ? c.num_kv_heads : 0;
  const int64_t total = o.kv_budget > 0 ? budget_values(c, o.kv_budget) - scales : 0;
  if (o.kv_budget > 0 && total < 3)
    fail("--kv-budget {} leaves {} values per layer besides the {} cached key scales of --qk-norm cached: too few",
         o.kv_budget, total, scales);
  // The (strategy, d_r, freqfold) candidates. With several strategies, one that cannot
  // take a d_r or fold offers nothing there (extend.h, rope_strategies).
  const std::vector<RopeStrategy> strategies = rope_strategy_list(o);
  const bool several = strategies.size() > 1;
  std::vector<RopeCand> cands;
  for (RopeStrategy k : strategies) {
    if (several && k != RopeStrategy::RoRoPE && o.freqfold > 1) continue;
    std::vector<int64_t> dims;
    if (o.qk_rope_dim > 0) dims = {o.qk_rope_dim};
    else if (total > 0) dims = rope_dim_candidates(c, k, total);
    else dims = {d / 2};
    if (o.standard_rope && o.qk_rope_dim == 0) {
      // Exportable conversions: only rope sizes whose kept frequencies a DeepSeek loader
      // derives from (rope_theta, rope_scaling) (deepseek_export.h, rope_spec_for).
      std::vector<int64_t> ok;
      for (int64_t dr : dims) {
        bool derivable = k == RopeStrategy::RoRoPE;  // candidates already divide d
        if (k == RopeStrategy::Uniform || k == RopeStrategy::High || k == RopeStrategy::Low) {
          const std::vector<int64_t> kept = choose_partial_freqs(c, k, dr, {});
          const std::vector<double> freqs = rope_inv_freq_table(c, dr, kept);
          derivable = freqs.empty() || rope_spec_for(freqs, c, dr).has_value();
        }
        if (derivable) ok.push_back(dr);
      }
      if (ok.empty() && !several)
        fail("extend: no rope key size with --rope-strategy {} keeps frequencies that the DeepSeek formats derive "
             "from rope_theta (needed for export); use --rope-strategy uniform or give --qk-rope-dim",
             rope_strategy_name(k));
      dims = std::move(ok);
    }
    for (int64_t dr : dims) {
      if (several && k == RopeStrategy::RoRoPE && d % dr != 0) continue;
      if (several && dr == d && k != strategies.front()) continue;  // every frequency kept: all the same
      const bool rorope = k == RopeStrategy::RoRoPE;
      const std::vector<int64_t> folds = o.freqfold > 0 ? std::vector<int64_t>{rorope ? o.freqfold : 1}
                                                        : freqfold_candidates(c, k, dr);
      for (int64_t f : folds) {
        if (several) {
          try {
            check_rope_choice(c, k, dr, f);
          } catch (const Error&) {
            continue;
          }
        } else {
          check_rope_choice(c, k, dr, f);
        }
        cands.push_back({k, dr, f});
      }
    }
  }
  if (cands.empty())
    fail("extend: no valid (--rope-strategy, --qk-rope-dim, --freqfold) for head size {}{}", d,
         o.standard_rope ? " whose frequencies the DeepSeek formats derive from rope_theta (needed for export)" : "");
  auto per_layer_rank = [&](int64_t dr) { return total > 0 ? total - dr : o.kv_lora_rank; };
  // attn's key balance: given, or chosen from kKeyBalances (after d_r / freqfold, at
  // the middle value).
  const bool auto_balance = o.kv_method == KvMethod::Attn && o.attn_key_balance == 0;
  const bool choosing = cands.size() > 1 || auto_balance;

  // Calibration ids: the statistics part and, when choosing, the held-out tail.
  const std::span<const int32_t> all(calib_ids);
  const int64_t wl = o.calib_len - 1;
  const QueryBias qb_mode = resolve_query_bias(o);
  rep.query_bias_mode = qb_mode;
  // A query bias to remove: its cost is measured on a held-out tail (as for choosing).
  const bool bias_removed = removes_query_bias(o, source_has_query_bias(gqa));
  int64_t held = 0;
  if (choosing || bias_removed) {
    held = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.holdout * static_cast<double>(all.size()) / wl))) * wl;
    if (static_cast<int64_t>(all.size()) < held + wl)
      fail("calibration text: {} tokens, too few to hold out {} for {} and keep one window of --calib-len {} for "
           "statistics ({})",
           all.size(), held,
           choosing ? "choosing --qk-rope-dim / --freqfold" : "measuring the query bias removal (--query-bias)",
           o.calib_len, choosing ? "give both, or more text" : "give more text, or --query-bias keep");
  }
  CalibWindows win;
  win.ids = all.subspan(0, all.size() - static_cast<size_t>(held));
  win.len = o.calib_len;
  win.max_tokens = o.calib_tokens;
  win.bos = c.bos_token_id;
  check_calib_windows(win, "calibration text");
  const std::span<const int32_t> heldout = all.subspan(all.size() - static_cast<size_t>(held));
  rep.calib_windows = win.count();
  rep.calib_tokens = win.tokens();
  rep.heldout_tokens = held;
  say(o, fmt::format("calibration: {} windows of {} tokens ({} positions per layer), {} tokens held out, mode {}",
                     win.count(), win.len, win.tokens(), held, calib_mode_name(o.calib_mode)));

  StatsWanted want;
  want.attention = o.nope_rotation == NopeRotation::Mean || o.kv_method == KvMethod::Attn;
  want.samples = norms_on(o);
  want.reservoir = o.reservoir;
  want.attention_tokens = o.attention_tokens;

  // Source statistics when something reads every layer's.
  // The fast choice reads a subsample; the parallel mode's conversion reads all of the source statistics.
  const bool choice_sub = choosing && o.choice == ChoiceMode::Fast && o.calib_mode == CalibMode::Sequential;
  const bool need_source = choosing || o.calib_mode == CalibMode::Parallel || o.rank_alloc == RankAlloc::Energy ||
                           std::find(strategies.begin(), strategies.end(), RopeStrategy::TwoNorm) != strategies.end();
  const int64_t D = c.hidden_size;
  rep.memory.second_moment = (D + 1) * (D + 1) * static_cast<int64_t>(sizeof(double));
  if (want.samples) rep.memory.reservoir = o.reservoir * D * static_cast<int64_t>(sizeof(float));
  if (want.attention)
    rep.memory.histogram =
        (c.num_heads * win.len + c.num_heads + c.num_heads * d * d) * static_cast<int64_t>(sizeof(double));
  std::vector<LayerStats> src_stats;
  if (need_source) {
    const auto ts = Clock::now();
    StatsWanted w = want;
    w.samples = want.samples && o.calib_mode == CalibMode::Parallel;
    say(o, fmt::format("source statistics of all {} layers in one pass: about {:.1f} MB", L,
                       static_cast<double>(L * (rep.memory.second_moment + rep.memory.histogram +
                                                (w.samples ? rep.memory.reservoir : 0))) / 1e6));
    CalibWindows sw = win;  // fast choice, sequential: the statistics from the first choice_tokens
    if (choice_sub && o.choice_tokens > 0)
      sw.max_tokens = std::max(win.len, sw.max_tokens > 0 ? std::min(sw.max_tokens, o.choice_tokens) : o.choice_tokens);
    rep.choice_calib_tokens = choosing ? sw.tokens() : 0;
    say(o, fmt::format("source statistics from {} windows ({} positions per layer)", sw.count(), sw.tokens()));
    src_stats = source_pass(gqa, sw, w, o.progress, o.device);
    rep.memory.source_pass = L * (rep.memory.second_moment + rep.memory.histogram + (w.samples ? rep.memory.reservoir : 0));
    ++rep.calib_passes;
    rep.timings.push_back({"source_statistics", since(ts)});
  }
  const std::vector<LayerStats>* src_ptr = need_source ? &src_stats : nullptr;

  auto setup_for = [&](const RopeCand& rc) {
    Setup s;
    s.split.strategy = rc.strategy;
    s.split.d_r = rc.d_r;
    s.split.freqfold = rc.freqfold;
    s.split.mean_rotation = o.nope_rotation == NopeRotation::Mean;
    s.split.complex_pca = o.rope_pca == RopePca::Complex;
    s.method = o.kv_method;
    s.key_balance = o.attn_key_balance;
    s.qk = resolve_qk_norm(o);
    s.split.kept = model_rope_freqs(gqa, s, src_ptr);  // rorope: informational (plan_rope derives them)
    return s;
  };
  auto ranks_for = [&](const Setup& s) {
    const int64_t per = per_layer_rank(s.split.d_r);
    if (o.rank_alloc == RankAlloc::Uniform) return std::vector<int64_t>(static_cast<size_t>(L), per);
    return allocate_ranks_by_energy(per, layer_spectra(gqa, s, src_stats), Z);
  };
  auto from_source = [&](const Setup& s, const std::vector<int64_t>& ranks, const ExtendOptions& oo, bool keep) {
    std::vector<LayerOut> out;
    for (int64_t l = 0; l < L; ++l)
      out.push_back(convert_layer(gqa, l, src_stats[static_cast<size_t>(l)], s, ranks[static_cast<size_t>(l)], oo, keep));
    return out;
  };

  // Choose (d_r, freqfold), then attn's key balance, by held-out perplexity of models
  // built from source statistics (extend_choice.h: the search; fast mode scores a
  // subsample of the held-out ids).
  RopeCand chosen = cands.front();
  double balance = auto_balance ? kKeyBalances[kKeyBalances.size() / 2] : o.attn_key_balance;
  if (choosing) {
    const auto ts = Clock::now();
    ops::set_blas_threads(ops::cpu_threads());
    ExtendOptions plain = o;  // candidates are compared without the RMSNorm fits
    plain.latent_norm = LatentNorm::None;
    plain.q_lora_rank = 0;
    plain.query_bias = QueryBias::Keep;
    std::span<const int32_t> scored_ids = heldout;
    if (o.choice == ChoiceMode::Fast && o.choice_heldout_tokens > 0 &&
        static_cast<int64_t>(scored_ids.size()) > o.choice_heldout_tokens)
      scored_ids = scored_ids.subspan(0, static_cast<size_t>(std::max(o.choice_heldout_tokens, wl)));
    rep.choice_heldout_tokens = static_cast<int64_t>(scored_ids.size());
    auto score_one = [&](const RopeCand& rc, double b) {
      const auto tc = Clock::now();
      Setup s = setup_for(rc);
      s.key_balance = b;
      const std::vector<int64_t> ranks = ranks_for(s);
      std::vector<LayerOut> layers = from_source(s, ranks, plain, false);
      const double ppl = hybrid_perplexity(gqa, with_mla(c, mla_config_for(c, s, ranks, false, 0)),
                                           pick(layers, &LayerOut::final), scored_ids, o.calib_len, o.device);
      rep.candidates.push_back({rc.strategy, rc.d_r, rc.freqfold, per_layer_rank(rc.d_r),
                                o.kv_method == KvMethod::Attn ? b : 0.0, ppl, since(tc)});
      say(o, fmt::format("candidate {}qk_rope_dim {} freqfold {} kv_lora_rank {}{}: held-out perplexity {:.4f} ({:.1f}s)",
                         several ? fmt::format("{} ", rope_strategy_name(rc.strategy)) : std::string(), rc.d_r,
                         rc.freqfold, per_layer_rank(rc.d_r),
                         o.kv_method == KvMethod::Attn ? fmt::format(" key balance {}", b) : std::string(), ppl,
                         since(tc)));
      return ppl;
    };
    // The rope axis: the d_r in increasing order; a position scores its best variant
    // (strategy and freqfold).
    std::vector<int64_t> axis;
    for (const auto& rc : cands) axis.push_back(rc.d_r);
    std::sort(axis.begin(), axis.end());
    axis.erase(std::unique(axis.begin(), axis.end()), axis.end());
    std::map<std::pair<int64_t, int64_t>, size_t> best_variant;  // (rope, balance position) -> index in cands
    const std::vector<double> balances = auto_balance ? kKeyBalances : std::vector<double>{balance};
    ChoicePoint start;
    start.rope = o.choice == ChoiceMode::Fast ? rope_start_position(axis, total) : 0;
    start.balance = auto_balance ? static_cast<int64_t>(kKeyBalances.size()) / 2 : 0;
    auto score = [&](ChoicePoint p) {
      const int64_t dr = axis[static_cast<size_t>(p.rope)];
      // Fast: off the start balance (the balance walk), only the variant that won at
      // this d_r on the start balance is scored.
      const auto fixed = best_variant.find({p.rope, start.balance});
      const bool only_fixed = o.choice == ChoiceMode::Fast && p.balance != start.balance && fixed != best_variant.end();
      // Fast: a strategy's freqfolds (candidates in ascending order) stop at the first that scores
      // worse than the fold before it (folding more frequencies together only loses once it loses).
      double best = 0, last = 0;
      const RopeCand* prev = nullptr;
      const RopeCand* stopped = nullptr;
      for (size_t i = 0; i < cands.size(); ++i) {
        if (cands[i].d_r != dr || (only_fixed && i != fixed->second)) continue;
        if (stopped && stopped->strategy == cands[i].strategy) continue;
        const double v = score_one(cands[i], balances[static_cast<size_t>(p.balance)]);
        if (o.choice == ChoiceMode::Fast && prev && prev->strategy == cands[i].strategy && v > last)
          stopped = &cands[i];
        prev = &cands[i];
        last = v;
        if (best == 0 || v < best) best = v, best_variant[{p.rope, p.balance}] = i;
      }
      return best;
    };
    const ChoiceResult res = search_choices(o.choice, static_cast<int64_t>(axis.size()),
                                            static_cast<int64_t>(balances.size()), start, score);
    chosen = cands[best_variant.at({res.best.rope, res.best.balance})];
    balance = balances[static_cast<size_t>(res.best.balance)];
    say(o, fmt::format("chose {}qk_rope_dim {} freqfold {}{} ({} choice: {} candidates on {} held-out tokens)",
                       several ? fmt::format("--rope-strategy {} ", rope_strategy_name(chosen.strategy)) : std::string(),
                       chosen.d_r, chosen.freqfold,
                       o.kv_method == KvMethod::Attn ? fmt::format(" key balance {}", balance) : std::string(),
                       choice_mode_name(o.choice), rep.candidates.size(), scored_ids.size()));
    rep.timings.push_back({"selection", since(ts)});
  }
  Setup fin = setup_for(chosen);
  fin.key_balance = balance;
  rep.key_balance = o.kv_method == KvMethod::Attn ? balance : 0.0;
  const std::vector<int64_t> ranks = ranks_for(fin);
  for (int64_t r : ranks)
    if (r < 1 || r > Z) fail("extend: layer rank {} outside [1, {}]", r, Z);
  const bool keep_stages = !o.eval_ids.empty();
  MlaConfig final_cfg = mla_config_for(c, fin, ranks, o.latent_norm == LatentNorm::Calibrated, o.q_lora_rank);
  final_cfg.latent_linear = o.latent_norm == LatentNorm::Calibrated && o.scale_latent && o.latent_linear;

  // Final conversion; converted layers are kept in the source's weight dtype.
  const DType store_dtype = gqa.weights.layers.front().wq.dtype;
  // A model read from a file (its matrices are views) gets file-backed converted layers too.
  const bool spill = gqa.weights.layers.front().wq.is_view();
  std::vector<LayerOut> layers;
  layers.reserve(static_cast<size_t>(L));
  const auto tconv = Clock::now();
  ops::set_blas_threads(ops::cpu_threads());
  if (o.calib_mode == CalibMode::Parallel) {
    for (int64_t l = 0; l < L; ++l) {
      layers.push_back(convert_layer(gqa, l, src_stats[static_cast<size_t>(l)], fin, ranks[static_cast<size_t>(l)], o,
                                     keep_stages));
      store_as(layers.back(), store_dtype, spill);
      src_stats[static_cast<size_t>(l)] = LayerStats{};  // no longer needed
      say(o, fmt::format("layer {}/{} converted ({:.1f}s)", l + 1, L, since(t0)));
    }
    rep.timings.push_back({"convert", since(tconv)});
  } else {
    // Sequential: layer l's statistics through the converted layers < l, from the
    // residual stream carried from layer to layer.
    const ModelConfig cfg = with_mla(c, final_cfg);
    const auto tinit = Clock::now();
    const std::unique_ptr<CarriedStates> carried = open_carried_states(gqa, win.all(), o.device, o.carried_max_in_memory);
    CarriedStates& states = *carried;
    rep.memory.carried_states = states.bytes();
    rep.memory.carried_file_backed = states.file_backed();
    say(o, fmt::format("sequential calibration: {} layers, carried states {:.1f} MB{}, statistics {:.1f} MB per layer",
                       L, static_cast<double>(states.bytes()) / 1e6,
                       states.file_backed() ? " (file-backed)" : states.device() == "cpu" ? "" : " on " + states.device(),
                       static_cast<double>(rep.memory.second_moment + rep.memory.reservoir + rep.memory.histogram) /
                           1e6));
    rep.timings.push_back({"calibration_embed", since(tinit)});
    double t_stats = 0, t_convert = 0, t_advance = 0;
    for (int64_t l = 0; l < L; ++l) {
      const LayerWeights& src_layer = gqa.weights.layers[static_cast<size_t>(l)];
      ExtendLayerTime lt;
      auto ts = Clock::now();
      LayerStats st = layer_stats(states, gqa, l, want);
      ++rep.calib_passes;
      lt.stats = since(ts);
      ts = Clock::now();
      ops::set_blas_threads(ops::cpu_threads());
      layers.push_back(convert_layer(gqa, l, st, fin, ranks[static_cast<size_t>(l)], o, keep_stages));
      st = LayerStats{};
      lt.convert = since(ts);
      if (refit_on(o, ranks[static_cast<size_t>(l)], Z)) {
        ts = Clock::now();
        LayerOut& lo = layers.back();
        if (keep_stages && lo.low_rank.w_dkv.empty()) lo.low_rank = lo.final;
        const int64_t windows = (o.value_refit_tokens + states.len() - 1) / states.len();
        // The heads of one source kv group together (they read the same source values), one
        // head at a time where that many features would make the fit large.
        const int64_t group = c.num_heads / c.num_kv_heads, r = ranks[static_cast<size_t>(l)];
        const int64_t block = group * r <= kRefitMaxFeatures ? group : 1;
        const ValueRefitResult vr = refit_outputs(states, gqa, l, cfg, lo.final, windows, block, o.value_refit_step);
        if (!lo.with_bias.w_dkv.empty()) {
          lo.with_bias.w_uv = lo.final.w_uv;
          lo.with_bias.wo = lo.final.wo;
        }
        lt.refit = since(ts);
        rep.value_refit.push_back(vr);
        say(o, fmt::format("layer {}: values refit on {} tokens: attention output error {:.4f} -> {:.4f} ({:.1f}s)", l + 1,
                           vr.tokens, vr.mean_before(), vr.mean_after(), lt.refit));
      }
      if (l + 1 < L) {  // the last layer's output is not needed
        ts = Clock::now();
        states.advance(cfg, l, src_layer, &layers.back().final);
        lt.advance = since(ts);
      }
      store_as(layers.back(), store_dtype, spill);
      rep.layer_times.push_back(lt);
      t_stats += lt.stats;
      t_convert += lt.convert;
      t_advance += lt.advance;
      say(o, fmt::format("layer {}/{}: statistics {:.1f}s, conversion {:.1f}s, advance {:.1f}s (elapsed {:.1f}s)", l + 1,
                         L, lt.stats, lt.convert, lt.advance, since(t0)));
    }
    rep.timings.push_back({"layer_statistics", t_stats});
    rep.timings.push_back({"layer_conversion", t_convert});
    rep.timings.push_back({"advance_states", t_advance});
  }
  for (const auto& l : layers)
    if (l.plan.slot_freq != layers.front().plan.slot_freq)
      fail("extend: internal error: rope pairs differ between layers");

  // Report.
  rep.rope_strategy = fin.split.strategy;
  rep.qk_rope_dim = fin.split.d_r;
  rep.freqfold = fin.split.freqfold;
  rep.layer_rank = ranks;
  rep.kept_freqs = layers.front().plan.slot_freq;
  for (const auto& l : layers) {
    rep.layer_rope_captured.push_back(l.plan.captured);
    rep.layer_latent_captured.push_back(l.latent_captured);
    rep.plans.push_back(l.plan);
    if (c.qk_norm) {
      rep.layer_q_norm_scale.push_back(l.q_norm_scale);
      rep.layer_k_norm_scale.push_back(l.k_norm_scale);
    }
  }
  if (c.qk_norm) rep.qk_norm_mode = fin.qk;
  auto stage = [&](const std::string& name, const ModelConfig& cfg, const std::vector<MlaLayerWeights>& w) {
    ExtendStage st;
    st.name = name;
    st.kv_bytes_per_token = kv_bytes(cfg);
    if (keep_stages) {
      st.ppl = hybrid_perplexity(gqa, cfg, w, o.eval_ids, o.eval_ctx, o.device);
      say(o, fmt::format("stage {:<15} perplexity {:.4f}  KV {} bytes/token", name, *st.ppl, st.kv_bytes_per_token));
    }
    rep.stages.push_back(st);
  };
  const bool refits = !rep.value_refit.empty();
  if (refits && keep_stages)  // a layer the refit skipped is its own low-rank stage
    for (auto& l : layers)
      if (l.low_rank.w_dkv.empty()) l.low_rank = l.final;
  const auto teval = Clock::now();
  stage("source", c, {});
  const MlaConfig rope_cfg = mla_config_for(c, fin, std::vector<int64_t>(static_cast<size_t>(L), Z), false, 0);
  stage("rope_separated", with_mla(c, rope_cfg), keep_stages ? pick(layers, &LayerOut::rope_only)
                                                             : std::vector<MlaLayerWeights>{});
  if (norms_on(o) || refits)
    stage("low_rank", with_mla(c, mla_config_for(c, fin, ranks, false, 0)),
          keep_stages ? pick(layers, &LayerOut::low_rank) : std::vector<MlaLayerWeights>{});
  for (const auto& l : layers)
    if (l.kv_bias_residual > 0) {
      for (const auto& k : layers) rep.layer_kv_bias_residual.push_back(k.kv_bias_residual);
      break;
    }
  std::vector<MlaLayerWeights> kept_w;
  if (bias_removed) {
    for (auto& l : layers)  // a layer without a bias to remove is the same in both models
      if (l.with_bias.w_dkv.empty()) l.with_bias = l.final;
    kept_w = pick(layers, &LayerOut::with_bias);
    for (const auto& l : layers) rep.layer_query_bias_residual.push_back(l.bias_residual);
    stage("query_bias_kept", with_mla(c, final_cfg), kept_w);
  }
  std::vector<MlaLayerWeights> final_w = pick(layers, &LayerOut::final);
  stage(norms_on(o) || refits ? "final" : "low_rank",
        with_mla(c, final_cfg), final_w);

  if (keep_stages) rep.timings.push_back({"stage_perplexities", since(teval)});
  Model m = assemble_model(gqa, final_cfg, std::move(final_w));
  if (bias_removed) {
    // The removal's cost on the held-out tail: the same conversion with the bias kept.
    const auto tb = Clock::now();
    const Model kept = assemble_model(gqa, final_cfg, std::move(kept_w));
    CompareOptions co;
    co.ctx = o.calib_len;
    co.max_tokens = 0;
    co.kv_dtype = DType::F32;
    co.open_a = co.open_b = [&](const Model& m, const SessionOptions& so) { return open_sequence(m, so, o.device); };
    const CompareResult cr = compare_models(kept, m, heldout, co);
    rep.query_bias.mode = query_bias_name(qb_mode);
    rep.query_bias.max_abs_logit_diff = cr.max_abs_logit_diff;
    rep.query_bias.ppl_kept = cr.ppl_a;
    rep.query_bias.ppl = cr.ppl_b;
    rep.query_bias.tokens = cr.tokens;
    m.config.mla->query_bias = rep.query_bias;
    say(o, rep.query_bias.describe());
    rep.timings.push_back({"query_bias_cost", since(tb)});
  }
  rep.seconds = since(t0);
  rep.timings.push_back({"total", rep.seconds});
  const int64_t before = rep.kv_bytes_before(), after = rep.kv_bytes_after();
  say(o, fmt::format("KV cache {} -> {} bytes/token ({:.1f}% of GQA, {:.2f}x smaller), {:.1f}s", before, after,
                     100.0 * static_cast<double>(after) / static_cast<double>(before),
                     static_cast<double>(before) / static_cast<double>(after), rep.seconds));
  if (report) *report = std::move(rep);
  return m;
}

}  // namespace mlar
