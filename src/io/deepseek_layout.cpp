// Bringing an MLA model into the DeepSeek layout (deepseek_export.h): refusals and
// exact rewrites.
#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "io/deepseek_export.h"
#include "model/weights.h"
#include "util/error.h"

namespace mlar {
namespace {

constexpr double kDeepseekLatentEps = 1e-6;  // transformers' DeepseekV3RMSNorm default

bool all_zero(const TypedTensor& t) {
  const Tensor f = t.to_f32();
  for (float x : f.data)
    if (x != 0.0f) return false;
  return true;
}

// Rewrites below work on float32 values (the tensors they touch are materialised once).
void scale(TypedTensor& t, double a) { scale_values(t, a); }

// Values per row of `t` (1 for a vector).
int64_t row_width(const TypedTensor& t) { return t.ndim() == 1 ? 1 : t.numel() / t.shape[0]; }

// Rows [row0, row0 + d) of `t`, half layout (i, i + d/2) -> interleaved (2i, 2i+1).
void rows_half_to_interleaved(TypedTensor& t, int64_t row0, int64_t d) {
  const int64_t w = row_width(t), half = d / 2;
  float* p = t.mutable_f32();
  std::vector<float> old(p + row0 * w, p + (row0 + d) * w);
  for (int64_t i = 0; i < half; ++i) {
    std::copy_n(old.begin() + i * w, w, p + (row0 + 2 * i) * w);
    std::copy_n(old.begin() + (i + half) * w, w, p + (row0 + 2 * i + 1) * w);
  }
}

// The tensor producing the queries (W_q, or q_b with q_lora).
TypedTensor& query_matrix(MlaLayerWeights& w, const MlaConfig& m) { return m.q_lora_rank > 0 ? w.wq_b : w.wq; }

// Per head h, rows [old_nope | old_rope] of `t` become [new_nope | rope(h, ...)], where
// new_nope = old nope rows padded with zero rows up to `new_nope` and `rope` writes the
// head's new rope rows (rope_rows of them) from the old ones.
template <typename RopeFn>
Tensor regroup_heads(const TypedTensor& typed, int64_t heads, int64_t old_nope, int64_t old_rope, int64_t new_nope,
                     int64_t rope_rows, RopeFn rope) {
  const Tensor t = typed.to_f32();
  const int64_t w = t.ndim() == 1 ? 1 : t.numel() / t.shape[0], old_qw = old_nope + old_rope,
                new_qw = new_nope + rope_rows;
  Shape s = t.shape;
  s[0] = heads * new_qw;
  Tensor out(s);
  for (int64_t h = 0; h < heads; ++h) {
    const float* src = t.ptr() + h * old_qw * w;
    float* dst = out.ptr() + h * new_qw * w;
    std::copy_n(src, old_nope * w, dst + (new_nope - old_nope) * w);  // zero rows first, then the old NoPE rows
    rope(h, src + old_nope * w, dst + new_nope * w, w);
  }
  return out;
}

}  // namespace

const char* deepseek_format_name(DeepseekFormat f) {
  return f == DeepseekFormat::HfDeepseekV3 ? "deepseek-v3" : "gguf";
}

DeepseekFormat parse_deepseek_format(const std::string& name) {
  if (name == "deepseek-v3") return DeepseekFormat::HfDeepseekV3;
  if (name == "gguf") return DeepseekFormat::GgufDeepseek2;
  fail("--format {}: unknown export format (deepseek-v3: HF DeepseekV3ForCausalLM directory; gguf: llama.cpp "
       "deepseek2 file)",
       name);
}

std::vector<double> rope_frequencies(double theta, int64_t dim, const RopeScaling& sc) {
  std::vector<double> out(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    double w = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
    if (sc.type == RopeScaling::Type::Linear) {
      w /= sc.factor;
    } else if (sc.type == RopeScaling::Type::Llama3) {
      const double old_ctx = static_cast<double>(sc.original_max_position);
      const double wavelen = 2.0 * std::numbers::pi / w;
      if (wavelen > old_ctx / sc.low_freq_factor) {
        w /= sc.factor;
      } else if (!(wavelen < old_ctx / sc.high_freq_factor)) {
        const double s = (old_ctx / wavelen - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
        w = (1.0 - s) * w / sc.factor + s * w;
      }
    }
    out[static_cast<size_t>(i)] = w;
  }
  return out;
}

std::optional<RopeSpec> rope_spec_for(const std::vector<double>& f, const ModelConfig& c, int64_t dim) {
  if (dim <= 0 || dim % 2 != 0 || static_cast<int64_t>(f.size()) * 2 != dim) return std::nullopt;
  auto same = [](const std::vector<double>& a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i)
      if (!(std::abs(a[i] - b[i]) <= 1e-6 * std::max(std::abs(a[i]), std::abs(b[i])))) return false;
    return true;
  };
  if (same(f, rope_frequencies(c.rope_theta, dim, c.rope_scaling))) return RopeSpec{c.rope_theta, c.rope_scaling};
  for (double x : f)
    if (!(x > 0) || !std::isfinite(x)) return std::nullopt;
  RopeSpec s;
  s.theta = f.size() >= 2 ? std::pow(f[0] / f[1], static_cast<double>(dim) / 2.0) : c.rope_theta;
  if (!(s.theta > 1) || !std::isfinite(s.theta)) return std::nullopt;
  if (std::abs(f[0] - 1.0) > 1e-9) {
    s.scaling.type = RopeScaling::Type::Linear;
    s.scaling.factor = 1.0 / f[0];
  }
  // Frequencies stored in float precision give a theta a little off a round number
  // (99.999997 for 100): prefer the round number when it fits as well.
  for (RopeSpec r = s; double t : {std::round(s.theta), s.theta}) {
    r.theta = t;
    if (t > 1 && same(f, rope_frequencies(r.theta, dim, r.scaling))) return r;
  }
  return std::nullopt;
}

void check_deepseek_layout(const ModelConfig& c, DeepseekFormat f, const std::string& src) {
  auto bad = [&](const char* what) {
    fail("{}: not in the DeepSeek layout for {} export ({}); pass it through deepseek_layout() first", src,
         deepseek_format_name(f), what);
  };
  if (!c.mla) bad("not an MLA model");
  const MlaConfig& m = *c.mla;
  if (m.num_rope_heads != 1) bad("num_rope_heads != 1");
  if (m.absorbed) bad("absorbed");
  if (m.q_rope_in_dim != 0) bad("q_rope_up present");
  if (!m.layer_kv_lora_rank.empty()) bad("per-layer ranks");
  if (!m.latent_norm) bad("no latent norm");
  if (m.qk_nope_head_dim < 1) bad("qk_nope_head_dim < 1");
  if (!m.rope_inv_freq.empty()) bad("explicit rope_inv_freq");
  if (c.rope_layout != RopeLayout::Interleaved) bad("half-layout rope rows");
  const double s = 1.0 / std::sqrt(static_cast<double>(m.qk_nope_head_dim + m.qk_rope_head_dim));
  if (std::abs(m.softmax_scale - s) > 1e-12 * s) bad("softmax scale is not 1/sqrt(qk_nope + qk_rope)");
  if (f == DeepseekFormat::HfDeepseekV3 && c.rms_norm_eps != kDeepseekLatentEps) bad("rms_norm_eps != 1e-6");
  if (f == DeepseekFormat::GgufDeepseek2 && c.rope_scaling.type != RopeScaling::Type::None) bad("RoPE scaling");
}

DeepseekLayoutPlan plan_deepseek_layout(const Model& m, DeepseekFormat f) {
  DeepseekLayoutPlan p;
  p.format = f;
  p.before = m.config;
  ModelConfig& c = p.after;
  c = m.config;
  std::vector<std::string>& notes = p.notes;
  const std::string src = m.source.empty() ? std::string("model") : m.source;
  p.source = src;
  const char* fmt_name = f == DeepseekFormat::HfDeepseekV3 ? "DeepSeek-V3 (HF)" : "GGUF deepseek2";
  // Qwen3's per-head norms: checked first, as neither converting nor any rewrite helps.
  // (An MLA model converted from Qwen3 keeps config.qk_norm as its source's: what its
  // attention does is in config.mla; `extend --qk-norm calibrated` folded the norms.)
  if (c.mla ? c.mla->qk_norm : c.qk_norm)
    fail("{}: the model has a per-head key norm (Qwen3 k_norm: an RMSNorm of each kv head's key before RoPE, and "
         "q_norm on each query head); {} has no per-head key or query norm (DeepSeek-V3 normalises only the latent "
         "and the q_a projection), so the export would change the model; convert with --rope-mode extend "
         "--qk-norm calibrated (the norms replaced by calibrated constants folded into W_q and W_k), which exports, "
         "or run the MLA directory of --rope-mode repeat (exact) with this project's runtime",
         src, fmt_name);
  if (c.mla && c.mla->qk_scale_dim > 0)
    fail("{}: the model keeps Qwen3's per-head q/k norms as score scales (convert --rope-mode extend --qk-norm "
         "cached: a scale per query head from its own rms, and {} key scales per token cached beside the latent); {} "
         "has no per-head norm and caches only [latent | rope key], so the export would change the model; convert "
         "with --qk-norm calibrated (the norms replaced by calibrated constants folded into W_q and W_k, which "
         "exports) or run the MLA directory with this project's runtime",
         src, c.mla->qk_scale_kv_heads, fmt_name);
  c.qk_norm = false;  // an MLA model: any Qwen3 norm is folded (checked above)
  if (!c.mla)
    fail("{}: is a GQA model; export writes MLA models in the DeepSeek layout: convert it first "
         "(mla-retrofit convert --rope-mode extend)",
         src);
  c.validate(src);
  check_weight_shapes(c, m.weights, src);
  MlaConfig& a = *c.mla;
  const int64_t dr = a.qk_rope_head_dim;

  // What no rewrite can express.
  if (a.absorbed)
    fail("{}: the model is stored absorbed (--absorb): W_uk and W_uv are folded into the query and output "
         "projections and cannot be recovered from them in general, while {} stores them (kv_b_proj / attn_k_b, "
         "attn_v_b); export the model converted without --absorb (engines absorb at load time)",
         src, fmt_name);
  if (a.num_rope_heads != 1)
    fail("{}: the model has {} rope heads (rope mode {}); {} has one rope key shared by every head (n_r = 1) and "
         "cannot express more; convert with --rope-mode extend for the DeepSeek layout",
         src, a.num_rope_heads, rope_mode_name(a.rope_mode), fmt_name);
  if (!a.layer_kv_lora_rank.empty()) {
    std::string ranks;
    for (int64_t r : a.layer_kv_lora_rank) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    fail("{}: the latent rank differs per layer ({}); {} holds one kv_lora_rank for all layers: convert with "
         "--rank-alloc uniform (the default), or with --target (docs/serving.md)",
         src, ranks, fmt_name);
  }
  if (!a.latent_norm)
    fail("{}: the model has no latent RMSNorm; DeepSeek loaders (transformers, vLLM, SGLang, llama.cpp) always "
         "apply kv_a_layernorm to the latent and no weight makes it the identity, so the export would change the "
         "model; convert with --latent-norm calibrated, or with --target (docs/serving.md)",
         src);
  if (a.q_rope_in_dim > 0 && a.rope_values() != dr)
    fail("{}: rope-query up-projection with {} rope values; expected {}", src, a.rope_values(), dr);

  // Biases (vectors: owned float32, cheap to scan): all-zero ones are dropped; the
  // formats have no slot for a query bias, GGUF none at all.
  bool dropped = false, has_kv_bias = false;
  for (size_t l = 0; l < m.weights.layers.size(); ++l) {
    const MlaLayerWeights& w = m.weights.layers[l].mla;
    for (const TypedTensor* t : {&w.bq, &w.b_dkv, &w.b_kr})
      if (!t->empty() && all_zero(*t)) dropped = true;
    if (!w.bq.empty() && !all_zero(w.bq))
      fail("{}: layer {} has a query bias (b_q: a Qwen2 source's, or the intercept of a fitted q_lora); {} has no "
           "query bias slot "
           "(DeepseekV3's q_proj / q_b_proj and deepseek2's attn_q / attn_q_b are bias-free), and a bias on the "
           "query cannot be moved elsewhere exactly; convert with --query-bias fold (the default with --latent-norm "
           "calibrated) to replace it by a measured approximation",
           src, l, fmt_name);
    const bool kv_bias = (!w.b_dkv.empty() && !all_zero(w.b_dkv)) || (!w.b_kr.empty() && !all_zero(w.b_kr));
    if (f == DeepseekFormat::GgufDeepseek2 && kv_bias)
      fail("{}: layer {} has a bias on the latent or rope-key projection; llama.cpp's deepseek2 has no bias "
           "tensors (export --format deepseek-v3 carries them as attention_bias)",
           src, l);
    has_kv_bias = has_kv_bias || kv_bias;
  }
  if (dropped) notes.push_back("dropped all-zero attention biases");
  if (!a.query_bias.empty()) notes.push_back(a.query_bias.describe() + " (made by convert --query-bias)");
  if (a.latent_linear)
    notes.push_back("the latent runs in the linear regime of kv_a_layernorm (convert --latent-scale linear): the "
                    "latent rows of the kv_a projection are scaled down by about 1e-4 and the norm weight up; exact "
                    "for inference, but fine-tuning the export needs a per-tensor learning rate for those rows (or "
                    "convert with --latent-scale natural)");
  c.attention_bias = has_kv_bias;

  // RoPE frequencies: explicit ones must be a standard set.
  if (!a.rope_inv_freq.empty()) {
    const auto spec = rope_spec_for(a.rope_inv_freq, c, dr);
    if (!spec)
      fail("{}: the rope frequencies (mla.rope_inv_freq, {} values, e.g. a partial-RoPE selection of the source's "
           "frequencies) are not those of a standard RoPE head of {} (any theta, optionally a linear factor); {} "
           "derives the frequencies from rope_theta and rope_scaling only",
           src, a.rope_inv_freq.size(), dr, fmt_name);
    if (spec->theta != c.rope_theta || spec->scaling.type != c.rope_scaling.type)
      notes.push_back(fmt::format("rope frequencies (mla.rope_inv_freq) written as rope_theta {}{}", spec->theta,
                                  spec->scaling.type == RopeScaling::Type::Linear
                                      ? fmt::format(" with linear scaling (factor {})", spec->scaling.factor)
                                      : std::string(" (no scaling)")));
    c.rope_theta = spec->theta;
    c.rope_scaling = spec->scaling;
    a.rope_inv_freq.clear();
  }
  if (f == DeepseekFormat::GgufDeepseek2 && c.rope_scaling.type != RopeScaling::Type::None)
    fail("{}: the model uses {} RoPE scaling; llama.cpp's deepseek2 couples any RoPE scaling with YaRN attention "
         "factors, so only unscaled RoPE exports exactly to GGUF (export --format deepseek-v3 carries it)",
         src, rope_scaling_name(c.rope_scaling.type));

  // W_qr of a single rope head: folded into the rope rows of the query.
  if (a.q_rope_in_dim > 0) {
    p.fold_qr_in = a.q_rope_in_dim;
    notes.push_back(fmt::format(
        "folded the rope-query up-projection W_qr ({} -> {} values per head) into the query rows", a.q_rope_in_dim,
        dr));
    a.q_rope_in_dim = 0;
  }
  // d_n = 0: one zero NoPE row per head (llama.cpp needs d_n >= 1).
  if (a.qk_nope_head_dim == 0) {
    p.pad_nope = true;
    a.qk_nope_head_dim = 1;
    notes.push_back("qk_nope_head_dim 0 padded to 1 (a zero query row and a zero key row per head)");
  }
  // Softmax scale: DeepSeek divides by sqrt(d_n + d_r).
  const double ds_scale = 1.0 / std::sqrt(static_cast<double>(a.qk_nope_head_dim + dr));
  const double ratio = a.softmax_scale / ds_scale;
  if (std::abs(ratio - 1.0) > 1e-12) {
    p.query_scale = ratio;
    notes.push_back(fmt::format("softmax scale {} folded into the query rows (x {:.6g}; DeepSeek uses 1/sqrt({}))",
                                a.softmax_scale, ratio, a.qk_nope_head_dim + dr));
  }
  a.softmax_scale = ds_scale;
  // Rope rows: interleaved.
  if (c.rope_layout == RopeLayout::Half) {
    p.to_interleaved = true;
    c.rope_layout = RopeLayout::Interleaved;
  }
  // deepseek-v3: every norm at eps 1e-6 (transformers' latent norms ignore rms_norm_eps).
  if (f == DeepseekFormat::HfDeepseekV3 && c.rms_norm_eps != kDeepseekLatentEps) {
    const double e = c.rms_norm_eps;
    p.residual_scale = std::sqrt(kDeepseekLatentEps / e);
    c.rms_norm_eps = kDeepseekLatentEps;
    notes.push_back(fmt::format(
        "rms_norm_eps {} written as 1e-6 with the residual stream scaled by {:.6g} (transformers' kv_a_layernorm "
        "and q_a_layernorm use eps 1e-6 whatever the config says; this keeps every norm exact in every engine)",
        e, p.residual_scale));
  }
  check_deepseek_layout(c, f, src);
  return p;
}

LayerWeights deepseek_layout_layer(const DeepseekLayoutPlan& p, LayerWeights L) {
  const MlaConfig& a0 = *p.before.mla;
  const int64_t H = p.before.num_heads, dr = a0.qk_rope_head_dim;
  MlaLayerWeights& w = L.mla;
  for (TypedTensor* t : {&w.bq, &w.b_dkv, &w.b_kr})
    if (!t->empty() && all_zero(*t)) *t = TypedTensor{};
  int64_t dn = a0.qk_nope_head_dim;
  if (p.fold_qr_in > 0) {
    const int64_t qin = p.fold_qr_in;
    const Tensor qr = w.wqr.to_f32();  // [H, dr, qin]
    auto fold = [&](int64_t h, const float* in, float* out, int64_t width) {
      const float* u = qr.ptr() + h * dr * qin;
      for (int64_t i = 0; i < dr; ++i)
        for (int64_t j = 0; j < width; ++j) {
          double s = 0;
          for (int64_t k = 0; k < qin; ++k) s += static_cast<double>(u[i * qin + k]) * in[k * width + j];
          out[i * width + j] = static_cast<float>(s);
        }
    };
    TypedTensor& q = query_matrix(w, a0);
    q = regroup_heads(q, H, dn, qin, dn, dr, fold);
    w.wqr = TypedTensor{};
  }
  if (p.pad_nope) {
    auto copy = [&](int64_t, const float* in, float* out, int64_t width) { std::copy_n(in, dr * width, out); };
    TypedTensor& q = query_matrix(w, a0);
    q = regroup_heads(q, H, 0, dr, 1, dr, copy);
    w.w_uk = Tensor({H, w.w_dkv.shape[0]});
    dn = 1;
  }
  if (p.query_scale != 1.0) {
    scale(query_matrix(w, a0), p.query_scale);
    scale(w.bq, p.query_scale);
  }
  if (p.to_interleaved) {
    const int64_t qw = dn + dr;
    for (int64_t h = 0; h < H; ++h) {
      rows_half_to_interleaved(query_matrix(w, a0), h * qw + dn, dr);
      if (!w.bq.empty()) rows_half_to_interleaved(w.bq, h * qw + dn, dr);
    }
    rows_half_to_interleaved(w.w_kr, 0, dr);
    if (!w.b_kr.empty()) rows_half_to_interleaved(w.b_kr, 0, dr);
  }
  if (p.residual_scale != 1.0) {
    const double alpha = p.residual_scale;
    scale(w.wo, alpha);
    scale(L.w_down, alpha);
    scale(w.w_dkv, alpha);
    scale(w.b_dkv, alpha);
    scale(w.wq_a, alpha);
  }
  return L;
}

void deepseek_layout_globals(const DeepseekLayoutPlan& p, ModelWeights& W, bool scale_embed) {
  if (p.residual_scale == 1.0) return;
  if (scale_embed) scale(W.embed, p.residual_scale);
  if (p.before.tie_word_embeddings) scale(W.final_norm, 1.0 / p.residual_scale);
}

Model deepseek_layout(Model m, DeepseekFormat f, std::vector<std::string>* notes_out) {
  const DeepseekLayoutPlan p = plan_deepseek_layout(m, f);
  for (auto& L : m.weights.layers) L = deepseek_layout_layer(p, std::move(L));
  deepseek_layout_globals(p, m.weights);
  m.config = p.after;
  check_weight_shapes(m.config, m.weights, p.source);
  if (notes_out) notes_out->insert(notes_out->end(), p.notes.begin(), p.notes.end());
  return m;
}

}  // namespace mlar
