#include "convert/value_refit.h"

#include <cblas.h>

#include <numeric>

#include "convert/linalg.h"
#include "ops/linear.h"
#include "runtime/gqa_attention.h"
#include "runtime/mla_attention.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {

namespace {

double mean_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// tr(W G W^T) - 2 tr(W C^T) + aa: the summed squared error of W o against a, from
// G = sum o o^T [r, r], C = sum a o^T [d, r], aa = sum |a|^2.
double residual(const la::Mat& W, const la::Mat& G, const la::Mat& C, double aa) {
  const la::Mat WG = la::matmul(W, G);
  double e = aa;
  for (size_t i = 0; i < W.a.size(); ++i) e += W.a[i] * WG.a[i] - 2.0 * W.a[i] * C.a[i];
  return e;
}

}  // namespace

double ValueRefitResult::mean_before() const { return mean_of(before); }
double ValueRefitResult::mean_after() const { return mean_of(after); }

ValueRefitResult refit_outputs(const CarriedStates& states, const Model& src, int64_t layer, const ModelConfig& cfg,
                               MlaLayerWeights& w, int64_t max_windows, int64_t block_heads, double step,
                               double ridge) {
  const ModelConfig& c = src.config;
  if (!cfg.mla) fail("value refit: layer {}: not an MLA config", layer);
  const MlaConfig& m = *cfg.mla;
  const int64_t H = c.num_heads, d = c.head_dim, r = m.rank(layer), D = c.hidden_size;
  if (m.absorbed || w.w_uv.empty()) fail("value refit: layer {}: stored-absorbed weights have no W_uv", layer);
  if (m.v_head_dim != d || cfg.num_heads != H)
    fail("value refit: layer {}: {} heads of values {} for a source of {} heads of {}", layer, cfg.num_heads,
         m.v_head_dim, H, d);
  if (!(step > 0 && step <= 1)) fail("value refit: step {} outside (0, 1]", step);
  if (block_heads < 1 || H % block_heads != 0)
    fail("value refit: layer {}: blocks of {} heads for {} heads", layer, block_heads, H);
  const int64_t nb = H / block_heads, F = block_heads * r, E = block_heads * d;  // features, values per block
  const LayerWeights& L = src.weights.layers[static_cast<size_t>(layer)];
  const GqaAttention source(c, L, rope_inv_freq(c));
  const MlaAttention converted(cfg, layer, w, MlaEval::Absorbed);
  // Every stride-th window: max_windows of them spread over the whole calibration text.
  const int64_t stride = max_windows > 0 ? std::max<int64_t>(1, states.windows() / max_windows) : 1;
  const la::Mat wo = la::from_tensor(L.wo);  // [D, H d], the source's
  // The block's share of the source output is y_b = W_o[:, b] a_b, never formed: the sums
  // below are taken over a_b, and C = W_o[:, b] A, |y|^2 = trace(W_o[:, b] S W_o[:, b]^T)
  // follow once per block (E x F and E x E per token instead of D x (E + F)).
  std::vector<la::Mat> G(static_cast<size_t>(nb), la::Mat(F, F));  // sum o_b o_b^T (upper)
  std::vector<la::Mat> A(static_cast<size_t>(nb), la::Mat(E, F));  // sum a_b o_b^T
  std::vector<la::Mat> S(static_cast<size_t>(nb), la::Mat(E, E));  // sum a_b a_b^T (upper)
  Workspace ws;
  std::vector<float> a, o;                         // [n, H d], [n, H r]
  std::vector<double> ab, ob;                      // one block: [n, E], [n, F]
  ValueRefitResult res;
  states.attention_inputs(
      c, L,
      [&](int64_t i, const float* x, int64_t n) {
        if (i % stride != 0 || (max_windows > 0 && i / stride >= max_windows)) return;
        a.resize(static_cast<size_t>(n * H * d));
        o.resize(static_cast<size_t>(n * H * r));
        ab.resize(static_cast<size_t>(n * E));
        ob.resize(static_cast<size_t>(n * F));
        std::unique_ptr<LayerCache> sc = source.make_cache(DType::F32), mc = converted.make_cache(DType::F32);
        sc->reserve(n);
        mc->reserve(n);
        source.attend(x, n, 0, *sc, ws, a.data());
        converted.attend_latents(x, n, 0, *mc, ws, o.data());
        for (int64_t b = 0; b < nb; ++b) {
          for (int64_t t = 0; t < n; ++t) {
            std::copy_n(a.data() + t * H * d + b * E, E, ab.data() + t * E);
            std::copy_n(o.data() + t * H * r + b * F, F, ob.data() + t * F);
          }
          cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(F), static_cast<int>(n), 1.0, ob.data(),
                      static_cast<int>(F), 1.0, G[static_cast<size_t>(b)].a.data(), static_cast<int>(F));
          cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(E), static_cast<int>(F),
                      static_cast<int>(n), 1.0, ab.data(), static_cast<int>(E), ob.data(), static_cast<int>(F), 1.0,
                      A[static_cast<size_t>(b)].a.data(), static_cast<int>(F));
          cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(E), static_cast<int>(n), 1.0, ab.data(),
                      static_cast<int>(E), 1.0, S[static_cast<size_t>(b)].a.data(), static_cast<int>(E));
        }
        res.tokens += n;
      },
      max_windows > 0 ? stride * max_windows : 0);
  if (res.tokens == 0) fail("value refit: layer {}: no calibration windows", layer);

  const la::Mat wo_c = la::from_tensor(w.wo), uv = la::from_tensor(w.w_uv);  // [D, H d], [H d, r]
  la::Mat wo2 = wo_c, uv2 = uv;  // the conversion's, rewritten head by head where the fit pays
  auto mirror_upper = [](la::Mat& m) {  // DSYRK filled the upper triangle
    for (int64_t i = 0; i < m.rows; ++i)
      for (int64_t j = 0; j < i; ++j) m(i, j) = m(j, i);
  };
  for (int64_t b = 0; b < nb; ++b) {
    la::Mat& g = G[static_cast<size_t>(b)];
    la::Mat& sb = S[static_cast<size_t>(b)];
    mirror_upper(g);
    mirror_upper(sb);
    const la::Mat wob = la::cols_of(wo, b * E, E);  // [D, E], the source's W_o of the block
    const la::Mat cm = la::matmul(wob, A[static_cast<size_t>(b)]);  // sum y_b o_b^T [D, F]
    const la::Mat wsb = la::matmul(wob, sb);                      // W_o[:, b] S
    double yy_b = 0;                                               // sum |y_b|^2
    for (size_t i = 0; i < wsb.a.size(); ++i) yy_b += wsb.a[i] * wob.a[i];
    la::Mat before(D, F);  // M_h = W_o[h] W_uv[h] side by side
    for (int64_t k = 0; k < block_heads; ++k) {
      const int64_t h = b * block_heads + k;
      const la::Mat mh = la::matmul(la::cols_of(wo_c, h * d, d), la::rows_of(uv, h * d, d));
      for (int64_t i = 0; i < D; ++i)
        for (int64_t j = 0; j < r; ++j) before(i, k * r + j) = mh(i, j);
    }
    // M = C (G + lambda I)^-1 through G's eigendecomposition.
    const la::SymEig e = la::sym_eig(g);
    double tr = 0;
    for (double v : e.values) tr += std::max(v, 0.0);
    const double lambda = std::max(ridge * tr / static_cast<double>(F), 1e-300);
    la::Mat scaled = e.vectors;  // V diag(1 / (s + lambda))
    for (int64_t i = 0; i < F; ++i)
      for (int64_t k = 0; k < F; ++k) scaled(i, k) /= std::max(e.values[static_cast<size_t>(k)], 0.0) + lambda;
    la::Mat after = la::matmul(la::matmul(cm, scaled), e.vectors, false, true);  // [D, F]
    // A step of `step` from the conversion's products toward the fit (1: the fit).
    for (size_t i = 0; i < after.a.size(); ++i) after.a[i] = before.a[i] + step * (after.a[i] - before.a[i]);
    // Each head's M_h [D, r] must pass through d_v = d values: with r > d, keep the d
    // directions of the output that carry most of M_h o_h (SVD of M_h G_hh^(1/2),
    // G_hh the head's own block), the reduced-rank regression of one head.
    for (int64_t k = 0; k < block_heads && r > d; ++k) {
      const la::Mat mh = la::cols_of(after, k * r, r);
      la::Mat gh(r, r);
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < r; ++j) gh(i, j) = g(k * r + i, k * r + j);
      la::Mat root;
      la::sym_sqrt(gh, 1e-12 * std::max(la::trace(gh), 1e-300), &root, nullptr);
      const la::Svd top = la::svd(la::matmul(mh, root));
      const la::Mat u = la::cols_of(top.u, 0, d);
      const la::Mat cut = la::matmul(u, la::matmul(u, mh, true, false));  // U_d U_d^T M_h
      for (int64_t i = 0; i < D; ++i)
        for (int64_t j = 0; j < r; ++j) after(i, k * r + j) = cut(i, j);
    }
    const double energy = yy_b;
    const double err_before = energy > 0 ? residual(before, g, cm, energy) / energy : 0.0;
    const double err_after = energy > 0 ? residual(after, g, cm, energy) / energy : 0.0;
    res.before.push_back(err_before);
    const bool keep = err_after >= err_before;  // never worse on the calibration tokens
    res.after.push_back(keep ? err_before : err_after);
    if (keep) continue;
    // M_h = U S V^T: W_o[h] = U S^(1/2) in its first min(r, d) columns, W_uv[h] = S^(1/2) V^T in as many
    // rows. The value rows past those are zero; their W_o columns keep the conversion's, so a later
    // fine-tuning has gradients there (a zero row and a zero column would be a stationary pair it could
    // never leave).
    for (int64_t k = 0; k < block_heads; ++k) {
      const int64_t h = b * block_heads + k;
      const la::Svd sv = la::svd(la::cols_of(after, k * r, r));
      const int64_t used = std::min(d, static_cast<int64_t>(sv.s.size()));
      for (int64_t q = 0; q < d; ++q) {
        const double s = q < used ? std::sqrt(sv.s[static_cast<size_t>(q)]) : 0.0;
        const int64_t col = h * d + q;
        if (q < used)
          for (int64_t i = 0; i < D; ++i) wo2(i, col) = sv.u(i, q) * s;
        for (int64_t j = 0; j < r; ++j) uv2(col, j) = q < used ? s * sv.vt(q, j) : 0.0;
      }
    }
  }
  w.wo = TypedTensor::from_f32(la::to_tensor(wo2), w.wo.dtype);
  w.w_uv = TypedTensor::from_f32(la::to_tensor(uv2), w.w_uv.dtype);
  return res;
}

}  // namespace mlar
