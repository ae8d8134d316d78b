// Causal scaled-dot-product attention over a batch of independent sequences, with
// grouped key/value heads, forward (keeping the row log-sum-exp) and backward.
//
// Rows are sequence-major: row s * len + t is token t of sequence s (position t).
// Query head h reads key/value head j(h) = h / (n_heads / n_kv_heads):
//   S_h[t, u] = scale * q_h(t) . k_j(u)           u <= t (causal, per sequence)
//   P_h = softmax_u(S_h),  lse_h[t] = log sum_u exp(S_h[t, u])
//   out_h(t) = sum_u P_h[t, u] v_j(u)
// exp is ops::exp_approx (relative error ~2e-7), as in the runtime's softmax.
// Backward (P recomputed from q, k and the saved lse):
//   dP = dO_h V_j^T,  dS = P * (dP - rowsum(P * dP))
//   dq_h = scale dS K_j,  dk_j += scale dS^T Q_h,  dv_j += P^T dO_h
// Used for GQA (n_kv < n_heads), MLA evaluated naively (keys/values expanded per
// head, dk != dv) and MLA over shared latent rows (n_kv_heads = 1, keys [c | k_pe]
// and values c in the same rows, k_stride = v_stride).
#pragma once
#include <cstdint>

namespace mlar::train {

struct AttnDims {
  int64_t n_seq = 0;       // sequences
  int64_t len = 0;         // tokens per sequence
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // key/value heads (divides n_heads)
  int64_t dk = 0;          // query/key head size
  int64_t dv = 0;          // value head size
  // Floats between consecutive rows of q, k, v, out (and dout); 0 = packed
  // (n_heads*dk, n_kv_heads*dk, n_kv_heads*dv, n_heads*dv). Heads are packed inside a row.
  int64_t q_stride = 0, k_stride = 0, v_stride = 0, o_stride = 0;
  float scale = 1.0f;

  int64_t rows() const { return n_seq * len; }
  int64_t qs() const { return q_stride > 0 ? q_stride : n_heads * dk; }
  int64_t ks() const { return k_stride > 0 ? k_stride : n_kv_heads * dk; }
  int64_t vs() const { return v_stride > 0 ? v_stride : n_kv_heads * dv; }
  int64_t os() const { return o_stride > 0 ? o_stride : n_heads * dv; }
};

// q [rows, n_heads, dk], k [rows, n_kv, dk], v [rows, n_kv, dv] (strided as above);
// out [rows, n_heads, dv] (o_stride); lse [rows, n_heads] (packed).
// Parallel over (sequence, head); one sgemm per product.
void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnDims& d);

// dout [rows, n_heads, dv] (o_stride). Outputs packed and overwritten:
// dq [rows, n_heads * dk], dk [rows, n_kv * dk], dv [rows, n_kv * dv].
// Parallel over (sequence, kv head); the heads of a group add into its dk, dv in
// head order, so the sums do not depend on scheduling.
void attention_backward(const float* q, const float* k, const float* v, const float* lse, const float* dout,
                        float* dq, float* dk, float* dv, const AttnDims& d);

}  // namespace mlar::train
