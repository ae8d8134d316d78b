#include "ops/shared_kv_attention.h"

#include <cblas.h>

#include <algorithm>
#include <stdexcept>

#include "ops/exp.h"
#include "ops/parallel.h"
#include "ops/threads.h"

namespace mlar::ops {

int64_t shared_kv_scores_size(const AttentionDims& d) {
  return d.n_q >= kSharedKvBatch && !d.key_scale ? 0 : d.n_q * d.n_heads * (d.q_start + d.n_q);
}

void shared_kv_attention(const float* q, const float* k, const float* v, float* out, const AttentionDims& d,
                         float* scores) {
  if (d.n_kv_heads != 1) throw std::invalid_argument("shared_kv_attention: n_kv_heads must be 1");
  if (d.n_q <= 0) return;
  if (d.n_q >= kSharedKvBatch && !d.key_scale) {
    causal_attention(q, k, v, out, d);
    return;
  }
  init_cpu_threads();
  const int64_t H = d.n_heads, dk = d.dk, dv = d.dv;
  const int64_t qs = d.q_stride ? d.q_stride : H * dk;
  const int64_t ks = d.k_stride ? d.k_stride : dk;
  const int64_t vs = d.v_stride ? d.v_stride : dv;
  const int64_t os = d.out_stride ? d.out_stride : H * dv;
  const int64_t T = d.q_start + d.n_q;  // keys seen by the last query
  // scores: [n_q * H, T]; row i*H + h belongs to query i, head h.

  // 1. scores = scale * Q_i K^T over blocks of keys (each thread streams its own rows).
  parallel_for(T, pick_grain(T, d.n_q * H * dk, 1 << 16, 16, 16), [&](int64_t t0, int64_t t1) {
    for (int64_t i = 0; i < d.n_q; ++i) {
      const int64_t valid = d.q_start + i + 1;
      const int64_t nt = std::min(t1, valid) - t0;
      if (nt <= 0) continue;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(H), static_cast<int>(nt),
                  static_cast<int>(dk), d.scale, q + i * qs, static_cast<int>(dk), k + t0 * ks, static_cast<int>(ks),
                  0.0f, scores + i * H * T + t0, static_cast<int>(T));
      if (d.key_scale)
        for (int64_t h = 0; h < H; ++h) {
          float* s = scores + (i * H + h) * T;
          const float* ks = d.key_scale + h / d.key_scale_group;
          for (int64_t t = t0; t < t0 + nt; ++t) s[t] *= ks[t * d.key_scale_stride];
        }
    }
  });

  // 2. Softmax of each row over its valid keys; masked keys get probability 0.
  const int64_t rows = d.n_q * H;
  parallel_for(rows, pick_grain(rows, 4 * T, 1 << 16), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      float* s = scores + row * T;
      const int64_t valid = d.q_start + row / H + 1;
      const float mx = *std::max_element(s, s + valid);
      const float inv = 1.0f / exp_shift_sum(s, valid, mx);
      for (int64_t t = 0; t < valid; ++t) s[t] *= inv;
      std::fill(s + valid, s + T, 0.0f);
    }
  });

  // 3. out_i[:, c0:c1] = P_i V[:, c0:c1] over blocks of value columns.
  parallel_for(dv, pick_grain(dv, rows * T, 1 << 16, 16, 16), [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < d.n_q; ++i) {
      const int64_t valid = d.q_start + i + 1;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(H), static_cast<int>(c1 - c0),
                  static_cast<int>(valid), 1.0f, scores + i * H * T, static_cast<int>(T), v + c0,
                  static_cast<int>(vs), 0.0f, out + i * os + c0, static_cast<int>(dv));
    }
  });
}

}  // namespace mlar::ops
