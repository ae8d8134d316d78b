#include "convert/absorb.h"

#include <utility>
#include <vector>

#include "ops/parallel.h"
#include "util/error.h"

namespace mlar {
namespace {

// A sparse row of coefficients: out_row = sum over terms of coef * in_row(index).
struct Term {
  int64_t index;
  double coef;
};

// out[o] = sum_{(i, a) in terms[o]} a * in[i] over rows of `cols` values, in double.
// in: [rows_in, cols] (a vector is one column), out: [terms.size(), cols].
Tensor combine_rows(const Tensor& in, int64_t cols, const std::vector<std::vector<Term>>& terms, const Shape& shape) {
  Tensor out(shape);
  const int64_t rows = static_cast<int64_t>(terms.size());
  int64_t nnz = 0;
  for (const auto& t : terms) nnz += static_cast<int64_t>(t.size());
  const int64_t work = rows ? (nnz / rows + 1) * cols : 0;
  ops::parallel_for(rows, ops::pick_grain(rows, work), [&](int64_t r0, int64_t r1) {
    std::vector<double> acc(static_cast<size_t>(cols));  // [cols] one output row
    for (int64_t o = r0; o < r1; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (const Term& t : terms[static_cast<size_t>(o)]) {
        const float* src = in.ptr() + t.index * cols;
        for (int64_t k = 0; k < cols; ++k) acc[static_cast<size_t>(k)] += t.coef * src[k];
      }
      float* dst = out.ptr() + o * cols;
      for (int64_t k = 0; k < cols; ++k) dst[k] = static_cast<float>(acc[static_cast<size_t>(k)]);
    }
  });
  return out;
}

// Which rows of the old q projection make each row of the absorbed one.
// Old rows per head: [q_nope (dn) | q_rope_in (qr)]; new rows per head: [latent (r) | rope (R)].
std::vector<std::vector<Term>> query_terms(const MlaLayerWeights& w, int64_t H, int64_t dn, int64_t qr, int64_t r,
                                           int64_t R) {
  std::vector<std::vector<Term>> terms(static_cast<size_t>(H * (r + R)));
  for (int64_t h = 0; h < H; ++h) {
    const int64_t in0 = h * (dn + qr), out0 = h * (r + R);
    // latent rows: W_uk[h]^T q_nope_h, W_uk[h] = w_uk rows h*dn .. (h+1)*dn - 1, [dn, r]
    for (int64_t i = 0; i < dn; ++i) {
      const float* uk = w.w_uk.ptr() + (h * dn + i) * r;
      for (int64_t c = 0; c < r; ++c)
        if (uk[c] != 0.0f) terms[static_cast<size_t>(out0 + c)].push_back({in0 + i, uk[c]});
    }
    // rope rows: W_qr[h] q_rope_in_h ([R, qr]), or the rope input itself (qr == R)
    for (int64_t o = 0; o < R; ++o) {
      auto& t = terms[static_cast<size_t>(out0 + r + o)];
      if (w.wqr.empty()) {
        t.push_back({in0 + dn + o, 1.0});
        continue;
      }
      const float* qr_row = w.wqr.ptr() + (h * R + o) * qr;
      for (int64_t i = 0; i < qr; ++i)
        if (qr_row[i] != 0.0f) t.push_back({in0 + dn + i, qr_row[i]});
    }
  }
  return terms;
}

// W_o' = W_o blockdiag_h(W_uv[h]): wo [D, H*dv], w_uv [H*dv, r] -> [D, H*r]. Sparse
// in W_uv (the repeat retrofit's is a selection), dense in W_o.
Tensor absorb_output(const Tensor& wo, const Tensor& w_uv, int64_t H, int64_t dv, int64_t r) {
  const int64_t D = wo.dim(0);
  std::vector<std::vector<Term>> uv(static_cast<size_t>(H * dv));  // nonzeros of each W_uv row
  for (int64_t i = 0; i < H * dv; ++i)
    for (int64_t c = 0; c < r; ++c)
      if (const float v = w_uv.ptr()[i * r + c]; v != 0.0f) uv[static_cast<size_t>(i)].push_back({c, v});
  Tensor out({D, H * r});
  ops::parallel_for(D, ops::pick_grain(D, H * dv * 4), [&](int64_t o0, int64_t o1) {
    std::vector<double> acc(static_cast<size_t>(H * r));  // [H * r] one output row
    for (int64_t o = o0; o < o1; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const float* src = wo.ptr() + o * H * dv;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < dv; ++i) {
          const double a = src[h * dv + i];
          if (a == 0.0) continue;
          for (const Term& t : uv[static_cast<size_t>(h * dv + i)]) acc[static_cast<size_t>(h * r + t.index)] += a * t.coef;
        }
      float* dst = out.ptr() + o * H * r;
      for (int64_t k = 0; k < H * r; ++k) dst[k] = static_cast<float>(acc[static_cast<size_t>(k)]);
    }
  });
  return out;
}

}  // namespace

std::string qk_norm_absorb_refusal() {
  return "--absorb: the model has per-head q/k RMSNorms (Qwen3 q_norm / k_norm); the query norm acts between W_q "
         "and the rope-query up-projection W_qr, so W_qr cannot be folded into W_q (the key norm k_norm stays on "
         "each per-kv-head rope key either way); convert without --absorb (the runtime absorbs on the fly in "
         "decode)";
}

void absorb(Model& m) {
  if (!m.config.mla) fail("{}: absorb needs an MLA model; this one is GQA (convert it first)", m.source);
  MlaConfig& mc = *m.config.mla;
  if (mc.absorbed) return;
  if (mc.qk_norm) fail("{}: {}", m.source, qk_norm_absorb_refusal());
  if (mc.qk_scale_dim > 0)
    fail("{}: --absorb: the model's per-head norms act as score scales (Qwen3 extend, --qk-norm cached): the key "
         "scales multiply each head's scores, which stored absorption does not express; the runtime absorbs on the "
         "fly",
         m.source);
  check_weight_shapes(m.config, m.weights, m.source);
  const int64_t H = m.config.num_heads, dn = mc.qk_nope_head_dim, qr = mc.q_rope_width(), R = mc.rope_values();
  for (size_t l = 0; l < m.weights.layers.size(); ++l) {
    MlaLayerWeights& w = m.weights.layers[l].mla;
    materialize_f32(w);  // the rewrite below works on float32 values
    const int64_t r = mc.rank(static_cast<int64_t>(l));
    const auto terms = query_terms(w, H, dn, qr, r, R);
    const int64_t rows = H * (r + R);
    TypedTensor& q = mc.q_lora_rank > 0 ? w.wq_b : w.wq;  // [H * (dn + qr), in]
    q = combine_rows(q.to_f32(), q.dim(1), terms, {rows, q.dim(1)});
    if (!w.bq.empty()) w.bq = combine_rows(w.bq.to_f32(), 1, terms, {rows});
    w.wo = absorb_output(w.wo.to_f32(), w.w_uv.to_f32(), H, mc.v_head_dim, r);
    w.w_uk = TypedTensor{};
    w.w_uv = TypedTensor{};
    w.wqr = TypedTensor{};
  }
  mc.absorbed = true;
  check_weight_shapes(m.config, m.weights, m.source);
}

}  // namespace mlar
