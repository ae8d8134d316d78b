#include "train/gqa_block.h"

#include <cmath>

#include "runtime/rope_table.h"
#include "train/ops_attention.h"
#include "train/ops_linear.h"
#include "train/ops_rmsnorm.h"
#include "train/ops_rope.h"
#include "util/error.h"

namespace mlar::train {
namespace {

using Buf = std::vector<float>;

struct GqaState final : AttentionState {
  Buf q;    // [rows, n_h * d] roped
  Buf k;    // [rows, n_kv * d] roped
  Buf v;    // [rows, n_kv * d]
  Buf att;  // [rows, n_h * d] attention output before W_o
  Buf lse;  // [rows, n_h]
  Buf q_in, k_in;  // qk_norm: q and k as projected, before their per-head RMSNorm
};

const float* opt(const TypedTensor& t) { return t.empty() ? nullptr : t.ptr(); }
float* opt(TypedTensor& t) { return t.empty() ? nullptr : t.ptr(); }
Buf buf(int64_t n) { return Buf(static_cast<size_t>(n)); }

}  // namespace

GqaBlock::GqaBlock(const ModelConfig& c, const LayerWeights& w)
    : w_(w), D_(c.hidden_size), H_(c.num_heads), J_(c.num_kv_heads), d_(c.head_dim), qk_norm_(c.qk_norm),
      eps_(static_cast<float>(c.rms_norm_eps)), pairs_(rope_pairs(c.rope_layout)), inv_freq_(rope_inv_freq(c)) {
  if (w.wq.shape != Shape{H_ * d_, D_} || w.wk.shape != Shape{J_ * d_, D_} || w.wv.shape != Shape{J_ * d_, D_} ||
      w.wo.shape != Shape{D_, H_ * d_})
    fail("train: GQA layer tensors do not match the config (wq {}, wk {}, wv {}, wo {})", shape_str(w.wq.shape),
         shape_str(w.wk.shape), shape_str(w.wv.shape), shape_str(w.wo.shape));
  if (qk_norm_ && (w.q_norm.shape != Shape{d_} || w.k_norm.shape != Shape{d_}))
    fail("train: q/k norms of shapes {} and {} for head size {}", shape_str(w.q_norm.shape), shape_str(w.k_norm.shape),
         d_);
}

std::unique_ptr<AttentionState> GqaBlock::forward(const float* x, const BatchShape& b, float* out) const {
  auto s = std::make_unique<GqaState>();
  const int64_t N = b.rows();
  const auto pos = b.positions();
  s->q = buf(N * H_ * d_);
  s->k = buf(N * J_ * d_);
  s->v = buf(N * J_ * d_);
  s->att = buf(N * H_ * d_);
  s->lse = buf(N * H_);
  linear_forward(x, w_.wq.ptr(), opt(w_.bq), s->q.data(), {N, D_, H_ * d_});
  linear_forward(x, w_.wk.ptr(), opt(w_.bk), s->k.data(), {N, D_, J_ * d_});
  linear_forward(x, w_.wv.ptr(), opt(w_.bv), s->v.data(), {N, D_, J_ * d_});
  if (qk_norm_) {  // Qwen3: every head's q and k (rows of d values) normalised before RoPE
    s->q_in = s->q;
    s->k_in = s->k;
    rmsnorm_forward(s->q_in.data(), w_.q_norm.ptr(), s->q.data(), {N * H_, d_, 0, 0, eps_});
    rmsnorm_forward(s->k_in.data(), w_.k_norm.ptr(), s->k.data(), {N * J_, d_, 0, 0, eps_});
  }
  ops::rope(s->q.data(), N, H_, d_, pos.data(), inv_freq_.data(), pairs_);
  ops::rope(s->k.data(), N, J_, d_, pos.data(), inv_freq_.data(), pairs_);
  AttnDims a;
  a.n_seq = b.n_seq;
  a.len = b.len;
  a.n_heads = H_;
  a.n_kv_heads = J_;
  a.dk = a.dv = d_;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d_)));
  attention_forward(s->q.data(), s->k.data(), s->v.data(), s->att.data(), s->lse.data(), a);
  linear_forward(s->att.data(), w_.wo.ptr(), nullptr, out, {N, H_ * d_, D_});
  return s;
}

void GqaBlock::backward(const float* x, const AttentionState& state, const BatchShape& b, const float* dout, float* dx,
                        LayerWeights& g) const {
  const auto& s = dynamic_cast<const GqaState&>(state);
  const int64_t N = b.rows();
  const auto pos = b.positions();
  Buf datt = buf(N * H_ * d_);  // [rows, n_h * d]
  linear_backward(s.att.data(), w_.wo.ptr(), dout, datt.data(), false, opt(g.wo), nullptr, {N, H_ * d_, D_});
  Buf dq = buf(N * H_ * d_), dk = buf(N * J_ * d_), dv = buf(N * J_ * d_);
  AttnDims a;
  a.n_seq = b.n_seq;
  a.len = b.len;
  a.n_heads = H_;
  a.n_kv_heads = J_;
  a.dk = a.dv = d_;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d_)));
  attention_backward(s.q.data(), s.k.data(), s.v.data(), s.lse.data(), datt.data(), dq.data(), dk.data(), dv.data(),
                     a);
  rope_backward(dq.data(), N, H_, d_, d_, H_ * d_, pos.data(), inv_freq_.data(), pairs_);
  rope_backward(dk.data(), N, J_, d_, d_, J_ * d_, pos.data(), inv_freq_.data(), pairs_);
  if (qk_norm_) {  // through the per-head norms: dq, dk become gradients of the projections
    Buf dq_in = buf(N * H_ * d_), dk_in = buf(N * J_ * d_);
    rmsnorm_backward(s.q_in.data(), w_.q_norm.ptr(), dq.data(), dq_in.data(), false, opt(g.q_norm),
                     {N * H_, d_, 0, 0, eps_});
    rmsnorm_backward(s.k_in.data(), w_.k_norm.ptr(), dk.data(), dk_in.data(), false, opt(g.k_norm),
                     {N * J_, d_, 0, 0, eps_});
    dq.swap(dq_in);
    dk.swap(dk_in);
  }
  linear_backward(x, w_.wq.ptr(), dq.data(), dx, false, opt(g.wq), opt(g.bq), {N, D_, H_ * d_});
  linear_backward(x, w_.wk.ptr(), dk.data(), dx, true, opt(g.wk), opt(g.bk), {N, D_, J_ * d_});
  linear_backward(x, w_.wv.ptr(), dv.data(), dx, true, opt(g.wv), opt(g.bv), {N, D_, J_ * d_});
}

}  // namespace mlar::train
