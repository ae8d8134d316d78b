#include "train/mla_block.h"

#include <algorithm>

#include "ops/elementwise.h"
#include "runtime/rope_table.h"
#include "train/ops_attention.h"
#include "train/ops_linear.h"
#include "train/ops_rmsnorm.h"
#include "train/ops_rope.h"
#include "util/error.h"

namespace mlar::train {
namespace {

using Buf = std::vector<float>;

struct MlaState final : AttentionState {
  Buf qa;   // [rows, q_lora] before its norm (q_lora only)
  Buf qan;  // [rows, q_lora] after it (q_lora only)
  Buf q;    // [rows, n_h * qw] the query projection
  Buf c0;   // [rows, r] latent before its norm (latent_norm only)
  Buf ckv;  // [rows, r + R] per token [c | k_pe roped], as the runtime caches it
  Buf qh;   // [rows, n_h * dk] attention queries
  Buf kh;   // [rows, n_h * dk] per-head keys (not absorbed)
  Buf vh;   // [rows, n_h * d_v] per-head values (not absorbed)
  Buf att;  // [rows, n_h * d_v], or [rows, n_h * r] absorbed: input of W_o
  Buf lse;  // [rows, n_h]
};

const float* opt(const TypedTensor& t) { return t.empty() ? nullptr : t.ptr(); }
float* opt(TypedTensor& t) { return t.empty() ? nullptr : t.ptr(); }
Buf buf(int64_t n) { return Buf(static_cast<size_t>(n)); }

}  // namespace

MlaBlock::MlaBlock(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w)
    : MlaLayerDims(c, layer, w, "train"), w_(w) {
  dk_ = absorbed_ ? r_ + R_ : dn_ + R_;
  if (c.mla && c.mla->latent_linear)
    fail("train: the latent of this model is in the linear regime of its norm (convert --latent-scale linear, the "
         "default without --distill-steps): W_dkv's rows are scaled down by about 1e-4, which optimiser steps of "
         "fixed size would swamp; convert it again with --latent-scale natural to fine-tune it");
  if (qk_norm_)
    fail("train: layer {} has per-head q/k RMSNorms (a Qwen3 source's q_norm / k_norm), which training does not "
         "implement yet (their forward and backward); the runtime (eval, compare, generate) runs such models",
         layer);
  if (qs_dim_ > 0)
    fail("train: layer {} has per-head norms as score scales (a Qwen3 source converted with --rope-mode extend "
         "--qk-norm cached), which training does not implement yet; convert with --qk-norm calibrated to fine-tune",
         layer);
}

std::unique_ptr<AttentionState> MlaBlock::forward(const float* x, const BatchShape& b, float* out) const {
  auto s = std::make_unique<MlaState>();
  const int64_t N = b.rows(), cs = r_ + R_;
  const auto pos = b.positions();

  // Query projection [rows, n_h * qw].
  s->q = buf(N * H_ * qw_);
  if (q_lora_ > 0) {
    s->qa = buf(N * q_lora_);
    s->qan = buf(N * q_lora_);
    linear_forward(x, w_.wq_a.ptr(), nullptr, s->qa.data(), {N, D_, q_lora_});
    rmsnorm_forward(s->qa.data(), w_.q_a_norm.ptr(), s->qan.data(), {N, q_lora_, 0, 0, eps_});
    linear_forward(s->qan.data(), w_.wq_b.ptr(), opt(w_.bq), s->q.data(), {N, q_lora_, H_ * qw_});
  } else {
    linear_forward(x, w_.wq.ptr(), opt(w_.bq), s->q.data(), {N, D_, H_ * qw_});
  }

  // Latent and rope key rows [rows, r + R].
  s->ckv = buf(N * cs);
  if (latent_norm_) {
    s->c0 = buf(N * r_);
    linear_forward(x, w_.w_dkv.ptr(), opt(w_.b_dkv), s->c0.data(), {N, D_, r_});
    rmsnorm_forward(s->c0.data(), w_.kv_norm.ptr(), s->ckv.data(), {N, r_, 0, cs, eps_});
  } else {
    linear_forward(x, w_.w_dkv.ptr(), opt(w_.b_dkv), s->ckv.data(), {N, D_, r_, 0, cs});
  }
  linear_forward(x, w_.w_kr.ptr(), opt(w_.b_kr), s->ckv.data() + r_, {N, D_, R_, 0, cs});
  ops::rope(s->ckv.data() + r_, N, nr_, dr_, dr_, cs, pos.data(), inv_freq_.data(), pairs_);

  // Attention queries [rows, n_h, dk]: [q_nope | rope part], the rope part roped.
  const int64_t qoff = absorbed_ ? r_ : dn_;  // start of the rope part in a query head
  s->qh = buf(N * H_ * dk_);
  if (qoff > 0) ops::copy_heads(s->q.data(), H_ * qw_, qw_, s->qh.data(), H_ * dk_, dk_, N, H_, qoff);
  if (has_qr_) {
    for (int64_t h = 0; h < H_; ++h)  // q_pe_h = W_qr[h] q_rope_in_h, W_qr[h]: [R, qin]
      linear_forward(s->q.data() + h * qw_ + qn_, w_.wqr.ptr() + h * R_ * qin_, nullptr,
                     s->qh.data() + h * dk_ + qoff, {N, qin_, R_, H_ * qw_, H_ * dk_});
  } else {
    ops::copy_heads(s->q.data() + qn_, H_ * qw_, qw_, s->qh.data() + qoff, H_ * dk_, dk_, N, H_, R_);
  }
  for (int64_t k = 0; k < nr_; ++k)
    ops::rope(s->qh.data() + qoff + k * dr_, N, H_, dr_, dk_, H_ * dk_, pos.data(), inv_freq_.data(), pairs_);

  AttnDims a;
  a.n_seq = b.n_seq;
  a.len = b.len;
  a.n_heads = H_;
  a.dk = dk_;
  a.scale = scale_;
  s->lse = buf(N * H_);
  if (absorbed_) {  // MQA over the shared rows: keys [c | k_pe], values c
    a.n_kv_heads = 1;
    a.dv = r_;
    a.k_stride = a.v_stride = cs;
    s->att = buf(N * H_ * r_);
    attention_forward(s->qh.data(), s->ckv.data(), s->ckv.data(), s->att.data(), s->lse.data(), a);
    linear_forward(s->att.data(), w_.wo.ptr(), nullptr, out, {N, H_ * r_, D_});
    return s;
  }
  // Per-head keys [rows, n_h, dk] = [W_uk[h] c | k_pe] and values [rows, n_h * d_v] = c W_uv^T.
  s->kh = buf(N * H_ * dk_);
  if (dn_ > 0) {
    Buf knope = buf(N * H_ * dn_);  // [rows, n_h * d_n]
    linear_forward(s->ckv.data(), w_.w_uk.ptr(), nullptr, knope.data(), {N, r_, H_ * dn_, cs, 0});
    ops::copy_heads(knope.data(), H_ * dn_, dn_, s->kh.data(), H_ * dk_, dk_, N, H_, dn_);
  }
  ops::copy_heads(s->ckv.data() + r_, cs, 0, s->kh.data() + dn_, H_ * dk_, dk_, N, H_, R_);
  s->vh = buf(N * H_ * dv_);
  linear_forward(s->ckv.data(), w_.w_uv.ptr(), nullptr, s->vh.data(), {N, r_, H_ * dv_, cs, 0});
  a.n_kv_heads = H_;
  a.dv = dv_;
  s->att = buf(N * H_ * dv_);
  attention_forward(s->qh.data(), s->kh.data(), s->vh.data(), s->att.data(), s->lse.data(), a);
  linear_forward(s->att.data(), w_.wo.ptr(), nullptr, out, {N, H_ * dv_, D_});
  return s;
}

void MlaBlock::backward(const float* x, const AttentionState& state, const BatchShape& b, const float* dout,
                        float* dx, LayerWeights& grad) const {
  const auto& s = dynamic_cast<const MlaState&>(state);
  MlaLayerWeights& g = grad.mla;
  const int64_t N = b.rows(), cs = r_ + R_;
  const auto pos = b.positions();
  const int64_t qoff = absorbed_ ? r_ : dn_;
  const int64_t att_w = absorbed_ ? r_ : dv_;  // per-head width W_o reads

  Buf datt = buf(N * H_ * att_w);  // [rows, n_h * att_w]
  linear_backward(s.att.data(), w_.wo.ptr(), dout, datt.data(), false, opt(g.wo), nullptr, {N, H_ * att_w, D_});

  AttnDims a;
  a.n_seq = b.n_seq;
  a.len = b.len;
  a.n_heads = H_;
  a.dk = dk_;
  a.scale = scale_;
  Buf dqh = buf(N * H_ * dk_);  // [rows, n_h * dk]
  Buf dckv = buf(N * cs);       // [rows, r + R]: [dc | dk_pe (roped)]
  if (absorbed_) {
    a.n_kv_heads = 1;
    a.dv = r_;
    a.k_stride = a.v_stride = cs;
    Buf dvc = buf(N * r_);  // [rows, r] gradient through the values
    attention_backward(s.qh.data(), s.ckv.data(), s.ckv.data(), s.lse.data(), datt.data(), dqh.data(), dckv.data(),
                       dvc.data(), a);
    for (int64_t t = 0; t < N; ++t)
      for (int64_t i = 0; i < r_; ++i) dckv[static_cast<size_t>(t * cs + i)] += dvc[static_cast<size_t>(t * r_ + i)];
  } else {
    a.n_kv_heads = H_;
    a.dv = dv_;
    Buf dkh = buf(N * H_ * dk_), dvh = buf(N * H_ * dv_);
    attention_backward(s.qh.data(), s.kh.data(), s.vh.data(), s.lse.data(), datt.data(), dqh.data(), dkh.data(),
                       dvh.data(), a);
    // Values: c -> c W_uv^T; the latent gradient lands in the first r of each dckv row.
    linear_backward(s.ckv.data(), w_.w_uv.ptr(), dvh.data(), dckv.data(), false, opt(g.w_uv), nullptr,
                    {N, r_, H_ * dv_, cs, 0});
    if (dn_ > 0) {
      Buf dknope = buf(N * H_ * dn_);  // [rows, n_h * d_n]
      ops::copy_heads(dkh.data(), H_ * dk_, dk_, dknope.data(), H_ * dn_, dn_, N, H_, dn_);
      linear_backward(s.ckv.data(), w_.w_uk.ptr(), dknope.data(), dckv.data(), true, opt(g.w_uk), nullptr,
                      {N, r_, H_ * dn_, cs, 0});
    }
    // The rope key is shared by every head: its gradient is the sum over heads (in head order).
    for (int64_t t = 0; t < N; ++t) {
      float* dst = dckv.data() + t * cs + r_;
      std::fill_n(dst, R_, 0.0f);
      for (int64_t h = 0; h < H_; ++h) {
        const float* src = dkh.data() + t * H_ * dk_ + h * dk_ + dn_;
        for (int64_t i = 0; i < R_; ++i) dst[i] += src[i];
      }
    }
  }

  // Rope key: un-rotate, then back through W_kr.
  rope_backward(dckv.data() + r_, N, nr_, dr_, dr_, cs, pos.data(), inv_freq_.data(), pairs_);
  linear_backward(x, w_.w_kr.ptr(), dckv.data() + r_, dx, false, opt(g.w_kr), opt(g.b_kr), {N, D_, R_, 0, cs});
  // Latent: through the optional norm, then W_dkv.
  if (latent_norm_) {
    Buf dc0 = buf(N * r_);  // [rows, r]
    rmsnorm_backward(s.c0.data(), w_.kv_norm.ptr(), dckv.data(), dc0.data(), false, opt(g.kv_norm),
                     {N, r_, 0, cs, eps_});
    linear_backward(x, w_.w_dkv.ptr(), dc0.data(), dx, dx != nullptr, opt(g.w_dkv), opt(g.b_dkv), {N, D_, r_});
  } else {
    linear_backward(x, w_.w_dkv.ptr(), dckv.data(), dx, dx != nullptr, opt(g.w_dkv), opt(g.b_dkv),
                    {N, D_, r_, 0, cs});
  }

  // Queries: un-rotate the rope parts, then back through W_qr (or the copy) and the projection.
  for (int64_t k = 0; k < nr_; ++k)
    rope_backward(dqh.data() + qoff + k * dr_, N, H_, dr_, dk_, H_ * dk_, pos.data(), inv_freq_.data(), pairs_);
  Buf dq = buf(N * H_ * qw_);  // [rows, n_h * qw]
  if (qoff > 0) ops::copy_heads(dqh.data(), H_ * dk_, dk_, dq.data(), H_ * qw_, qw_, N, H_, qoff);
  if (has_qr_) {
    for (int64_t h = 0; h < H_; ++h)
      linear_backward(s.q.data() + h * qw_ + qn_, w_.wqr.ptr() + h * R_ * qin_, dqh.data() + h * dk_ + qoff,
                      dq.data() + h * qw_ + qn_, false, g.wqr.empty() ? nullptr : g.wqr.ptr() + h * R_ * qin_,
                      nullptr, {N, qin_, R_, H_ * qw_, H_ * dk_});
  } else {
    ops::copy_heads(dqh.data() + qoff, H_ * dk_, dk_, dq.data() + qn_, H_ * qw_, qw_, N, H_, R_);
  }
  if (q_lora_ > 0) {
    Buf dqan = buf(N * q_lora_), dqa = buf(N * q_lora_);  // [rows, q_lora]
    linear_backward(s.qan.data(), w_.wq_b.ptr(), dq.data(), dqan.data(), false, opt(g.wq_b), opt(g.bq),
                    {N, q_lora_, H_ * qw_});
    rmsnorm_backward(s.qa.data(), w_.q_a_norm.ptr(), dqan.data(), dqa.data(), false, opt(g.q_a_norm),
                     {N, q_lora_, 0, 0, eps_});
    linear_backward(x, w_.wq_a.ptr(), dqa.data(), dx, dx != nullptr, opt(g.wq_a), nullptr, {N, D_, q_lora_});
  } else {
    linear_backward(x, w_.wq.ptr(), dq.data(), dx, dx != nullptr, opt(g.wq), opt(g.bq), {N, D_, H_ * qw_});
  }
}

}  // namespace mlar::train
