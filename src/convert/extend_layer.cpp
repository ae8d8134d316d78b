#include "convert/extend_layer.h"

#include <cmath>

#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {
namespace {

// dst.row(dr) += w * src.row(sr)
void axpy_row(la::Mat& dst, int64_t dr, double w, const la::Mat& src, int64_t sr) {
  double* d = dst.row(dr);
  const double* s = src.row(sr);
  for (int64_t i = 0; i < dst.cols; ++i) d[i] += w * s[i];
}

// W_o[h]: columns [h d, (h+1) d) of W_o, [D, d].
la::Mat wo_block(const la::Mat& wo, int64_t h, int64_t d) { return la::cols_of(wo, h * d, d); }

}  // namespace

RopeStats layer_rope_stats(const ModelConfig& c, const LayerWeights& src, const la::Mat& S, bool query) {
  RopeStats st;
  st.key = la::sandwich(la::augmented(src.wk, src.bk), S);
  if (!query) return st;
  const la::Mat wq = la::augmented(src.wq, src.bq);  // [H d, D+1]
  for (int64_t h = 0; h < c.num_heads; ++h)
    st.query.push_back(la::sandwich(la::rows_of(wq, h * c.head_dim, c.head_dim), S));
  return st;
}

SplitLayer split_layer(const ModelConfig& c, const LayerWeights& src, const la::Mat& S, const SplitOptions& o) {
  const int64_t D = c.hidden_size, H = c.num_heads, J = c.num_kv_heads, d = c.head_dim, g = c.group_size();
  const int64_t K = J * d, W = D + 1, d_r = o.d_r;
  const la::Mat wq = la::augmented(src.wq, src.bq);  // [H d, D+1]
  const la::Mat wk = la::augmented(src.wk, src.bk);  // [J d, D+1]
  const la::Mat wv = la::augmented(src.wv, src.bv);  // [J d, D+1]
  if (o.mean_rotation && (!o.attention || o.attention->empty()))
    fail("split_layer: mean rotation needs the layer's attention statistics");
  const bool need_query = o.strategy == RopeStrategy::TwoNorm && o.kept.empty();
  const RopeStats st = layer_rope_stats(c, src, S, need_query);

  SplitLayer out;
  out.plan = plan_rope(c, st, o.strategy, d_r, o.freqfold, o.kept, o.complex_pca);
  const RopePlan& plan = out.plan;
  const int64_t dq = d + d_r;

  // Rope key: pair t = component a of group gi, k'_a = sum conj(mix) k (complex
  // product on (re, im): conj(x + iy) (u + iv) = (xu + yv) + i (xv - yu)).
  out.k_rope = la::Mat(d_r, W);
  for (int64_t t = 0; t < d_r / 2; ++t) {
    const auto [gi, a] = plan.slots[static_cast<size_t>(t)];
    const RopeGroup& grp = plan.groups[static_cast<size_t>(gi)];
    const int64_t F = static_cast<int64_t>(grp.freqs.size());
    const auto [tr, ti] = rope_pair_coords(c.rope_layout, d_r, t);
    for (int64_t j = 0; j < J; ++j)
      for (int64_t f = 0; f < F; ++f) {
        const auto [sr, si] = rope_pair_coords(c.rope_layout, d, grp.freqs[static_cast<size_t>(f)]);
        const double x = grp.mix(j * F + f, a), y = grp.mix_im(j * F + f, a);
        axpy_row(out.k_rope, tr, x, wk, j * d + sr);
        axpy_row(out.k_rope, tr, y, wk, j * d + si);
        axpy_row(out.k_rope, ti, x, wk, j * d + si);
        axpy_row(out.k_rope, ti, -y, wk, j * d + sr);
      }
  }

  // z = [k_nope ; v]: k_nope = k minus its rope part, v unchanged.
  out.z = la::Mat(2 * K, W);
  std::copy(wk.a.begin(), wk.a.end(), out.z.a.begin());
  std::copy(wv.a.begin(), wv.a.end(), out.z.a.begin() + K * W);
  // Queries: per head [q_h (d) | q_pe (d_r)].
  out.q = la::Mat(H * dq, W);
  for (int64_t h = 0; h < H; ++h) std::copy(wq.row(h * d), wq.row(h * d) + d * W, out.q.row(h * dq));
  if (o.mean_rotation) {  // q_nope = M^T q, pair by pair
    const std::vector<float> inv_freq = rope_inv_freq(c);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < d / 2; ++i) {
        const auto [a, b] = o.attention->mean_rotation(h, inv_freq[static_cast<size_t>(i)]);
        const auto [re, im] = rope_pair_coords(c.rope_layout, d, i);
        double* qr = out.q.row(h * dq + re);
        double* qi = out.q.row(h * dq + im);
        for (int64_t col = 0; col < W; ++col) {
          const auto [nr, ni] = mean_rotated(qr[col], qi[col], a, b);
          qr[col] = nr;
          qi[col] = ni;
        }
      }
  }

  for (int64_t t = 0; t < d_r / 2; ++t) {
    const auto [gi, a] = plan.slots[static_cast<size_t>(t)];
    const RopeGroup& grp = plan.groups[static_cast<size_t>(gi)];
    const int64_t F = static_cast<int64_t>(grp.freqs.size());
    const auto [tr, ti] = rope_pair_coords(c.rope_layout, d_r, t);
    for (int64_t f = 0; f < F; ++f) {
      const auto [sr, si] = rope_pair_coords(c.rope_layout, d, grp.freqs[static_cast<size_t>(f)]);
      for (int64_t j = 0; j < J; ++j) {
        // rope part of k_{j,f} = part k' = (x + iy)(u + iv) = (xu - yv) + i (yu + xv)
        const double x = grp.part(j * F + f, a), y = grp.part_im(j * F + f, a);
        axpy_row(out.z, j * d + sr, -x, out.k_rope, tr);
        axpy_row(out.z, j * d + sr, y, out.k_rope, ti);
        axpy_row(out.z, j * d + si, -y, out.k_rope, tr);
        axpy_row(out.z, j * d + si, -x, out.k_rope, ti);
        for (int64_t h = j * g; h < (j + 1) * g; ++h) {  // q' += conj(part) q_{h,f}
          axpy_row(out.q, h * dq + d + tr, x, wq, h * d + sr);
          axpy_row(out.q, h * dq + d + tr, y, wq, h * d + si);
          axpy_row(out.q, h * dq + d + ti, x, wq, h * d + si);
          axpy_row(out.q, h * dq + d + ti, -y, wq, h * d + sr);
        }
      }
    }
  }
  return out;
}

KvProblem kv_problem(const ModelConfig& c, const LayerWeights& src, const SplitLayer& split, const la::Mat& S,
                     KvMethod method, double key_balance, const DistanceHistogram* attention) {
  const int64_t J = c.num_kv_heads, d = c.head_dim, g = c.group_size(), K = J * d;
  const int64_t dq = d + split.plan.d_r, D = c.hidden_size;
  KvProblem p;
  p.wz = split.z;
  p.S = S;
  p.key_rows = K;
  if (method != KvMethod::Attn) return p;
  const la::Mat wo = la::from_tensor(src.wo);  // [D, H d]
  p.key_metric = la::Mat(K, K);
  p.value_metric = la::Mat(K, K);
  for (int64_t j = 0; j < J; ++j) {
    // Cov(v_j) = E[v v^T] - E[v] E[v]^T; E[v] = W~_v E[[x;1]] (the last column of S).
    const la::Mat wv = la::rows_of(split.z, K + j * d, d);
    la::Mat cov = la::sandwich(wv, S);
    la::Mat mean = la::matmul(wv, la::cols_of(S, D, 1));  // [d, 1]
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = 0; b < d; ++b) cov(a, b) -= mean(a, 0) * mean(b, 0);
    for (int64_t h = j * g; h < (j + 1) * g; ++h) {
      const la::Mat ob = wo_block(wo, h, d);
      const la::Mat gram = la::matmul(ob, ob, true, false);  // [d, d] W_o[h]^T W_o[h]
      double spread = 0;  // tr(G_h Cov(v_j)), or measured under the attention
      if (attention && !attention->empty()) {
        spread = attention->value_spread(h);
      } else {
        for (int64_t a = 0; a < d; ++a)
          for (int64_t b = 0; b < d; ++b) spread += gram(a, b) * cov(b, a);
      }
      const la::Mat qq = la::sandwich(la::rows_of(split.q, h * dq, d), S);  // E[q_h q_h^T]
      const double w = key_balance * std::max(spread, 0.0) / static_cast<double>(d);
      for (int64_t a = 0; a < d; ++a)
        for (int64_t b = 0; b < d; ++b) {
          p.key_metric(j * d + a, j * d + b) += w * qq(a, b);
          p.value_metric(j * d + a, j * d + b) += gram(a, b);
        }
    }
  }
  return p;
}

MlaConfig extend_mla_config(const ModelConfig& c, int64_t d_r) {
  MlaConfig m;
  m.rope_mode = RopeMode::Extend;
  m.kv_lora_rank = 2 * c.kv_dim();
  m.qk_nope_head_dim = c.head_dim;
  m.qk_rope_head_dim = d_r;
  m.num_rope_heads = 1;
  m.v_head_dim = c.head_dim;
  m.q_lora_rank = 0;
  m.q_rope_in_dim = 0;
  m.latent_norm = false;
  m.absorbed = false;
  m.softmax_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim + d_r));
  return m;
}

MlaLayerWeights assemble_layer(const ModelConfig& c, const LayerWeights& src, const SplitLayer& split,
                               const la::Mat* A, const la::Mat* B) {
  const int64_t D = c.hidden_size, H = c.num_heads, J = c.num_kv_heads, d = c.head_dim, g = c.group_size();
  const int64_t K = J * d, Z = 2 * K, d_r = split.plan.d_r;
  if ((A == nullptr) != (B == nullptr)) fail("assemble_layer: give both A and B or neither");
  const double q_scale = std::sqrt(static_cast<double>(d + d_r) / static_cast<double>(d));

  MlaLayerWeights w;
  la::Mat q = split.q;
  for (double& v : q.a) v *= q_scale;
  w.wq = la::to_tensor(q, D);
  w.bq = la::column_tensor(q, D, true);
  w.w_kr = la::to_tensor(split.k_rope, D);
  w.b_kr = la::column_tensor(split.k_rope, D, true);
  w.wo = src.wo;

  la::Mat up;  // [Z, r]
  if (A) {
    if (A->cols != Z || B->rows != Z || A->rows != B->cols)
      fail("assemble_layer: factors of {} x {} and {} x {} for z of {}", A->rows, A->cols, B->rows, B->cols, Z);
    const la::Mat dkv = la::matmul(*A, split.z);  // [r, D+1]
    w.w_dkv = la::to_tensor(dkv, D);
    w.b_dkv = la::column_tensor(dkv, D, true);
    up = *B;
  } else {
    w.w_dkv = la::to_tensor(split.z, D);
    w.b_dkv = la::column_tensor(split.z, D, true);
    up = la::Mat::identity(Z);
  }
  const int64_t r = up.cols;
  w.w_uk = Tensor({H * d, r});  // W_uk[h] = rows of B for the NoPE key of group j(h)
  w.w_uv = Tensor({H * d, r});  // W_uv[h] = rows of B for the value of group j(h)
  for (int64_t h = 0; h < H; ++h) {
    const int64_t j = h / g;
    for (int64_t i = 0; i < d; ++i)
      for (int64_t k = 0; k < r; ++k) {
        w.w_uk.ptr()[(h * d + i) * r + k] = static_cast<float>(up(j * d + i, k));
        w.w_uv.ptr()[(h * d + i) * r + k] = static_cast<float>(up(K + j * d + i, k));
      }
  }
  return w;
}

}  // namespace mlar
