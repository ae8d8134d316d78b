#include "ops/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/exp.h"
#include "ops/parallel.h"
#include "ops/threads.h"

namespace mlar::ops {

AttentionDims AttentionDims::grouped(int64_t n_q, int64_t n_heads, int64_t n_kv_heads, int64_t d, int64_t q_start) {
  AttentionDims a;
  a.n_q = n_q;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv_heads;
  a.dk = d;
  a.dv = d;
  a.q_start = q_start;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  return a;
}
namespace {

// Query rows per block of the BLAS path: a block attends keys [0, q_start + its last
// row], so the masked (wasted) part of each score block stays small.
constexpr int64_t kBlock = 64;

// Decode path: from this many keys on, scores and the weighted sum of a kv group
// are two small sgemm calls instead of scalar loops.
constexpr int64_t kGemmKeys = 32;

// Prefill path: per (head, query block), S = scale * Q K^T and O = softmax(S) V as
// two single-threaded sgemm calls on strided views of the buffers.
void attention_blas(const float* q, const float* k, const float* v, float* out, const AttentionDims& a, int64_t qs,
                    int64_t ks, int64_t vs, int64_t os, int64_t khs, int64_t vhs) {
  const int64_t H = a.n_heads, g = a.n_heads / a.n_kv_heads, dk = a.dk, dv = a.dv;
  const int64_t blocks = (a.n_q + kBlock - 1) / kBlock;
  // Tasks ordered by block, last (longest) blocks first, so the threads finish together.
  parallel_for(H * blocks, 1, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> s;
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = blocks - 1 - task / H, h = task % H, j = h / g;
      const int64_t i0 = b * kBlock, m = std::min(a.n_q, i0 + kBlock) - i0;
      const int64_t nk = a.q_start + i0 + m;  // keys seen by the block's last row
      s.resize(static_cast<size_t>(m * nk));  // [m, nk] scores, then probabilities
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(nk),
                  static_cast<int>(dk), a.scale, q + i0 * qs + h * dk, static_cast<int>(qs), k + j * khs,
                  static_cast<int>(ks), 0.0f, s.data(), static_cast<int>(nk));
      for (int64_t r = 0; r < m; ++r) {
        float* sr = s.data() + r * nk;
        const int64_t valid = a.q_start + i0 + r + 1;
        const float mx = *std::max_element(sr, sr + valid);
        const float inv = 1.0f / exp_shift_sum(sr, valid, mx);
        for (int64_t t = 0; t < valid; ++t) sr[t] *= inv;
        std::fill(sr + valid, sr + nk, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(dv),
                  static_cast<int>(nk), 1.0f, s.data(), static_cast<int>(nk), v + j * vhs, static_cast<int>(vs), 0.0f,
                  out + i0 * os + h * dv, static_cast<int>(os));
    }
  });
}

}  // namespace

void causal_attention(const float* q, const float* k, const float* v, float* out, const AttentionDims& a) {
  const int64_t H = a.n_heads, J = a.n_kv_heads, dk = a.dk, dv = a.dv, g = H / J;
  const int64_t qs = a.q_stride ? a.q_stride : H * dk;
  // Packed rows: a token's kv heads side by side, or (with head strides) one head's row.
  const int64_t ks = a.k_stride ? a.k_stride : a.k_head_stride ? dk : J * dk;
  const int64_t vs = a.v_stride ? a.v_stride : a.v_head_stride ? dv : J * dv;
  const int64_t os = a.out_stride ? a.out_stride : H * dv;
  const int64_t khs = a.k_heads_apart(), vhs = a.v_heads_apart();
  init_cpu_threads();
  if (a.n_q >= 16) {
    attention_blas(q, k, v, out, a, qs, ks, vs, os, khs, vhs);
    return;
  }
  const int64_t n_keys_max = a.q_start + a.n_q;
  const int64_t tasks = a.n_q * J;
  // Causal rows differ in length; small chunks let the threads even out.
  const int64_t grain = std::max<int64_t>(1, pick_grain(tasks, g * n_keys_max * (dk + dv), 1 << 16) / 2);
  parallel_for(tasks, grain, [&](int64_t task0, int64_t task1) {
    thread_local std::vector<float> scores, acc;
    scores.resize(static_cast<size_t>(g * n_keys_max));  // [g, n_keys]
    acc.resize(static_cast<size_t>(g * dv));             // [g, dv]
    for (int64_t task = task0; task < task1; ++task) {
      const int64_t i = task / J, j = task % J;
      const int64_t n_keys = a.q_start + i + 1;
      const float* qi = q + i * qs + j * g * dk;  // the g query heads of group j, each dk
      // scores[hh, t] = scale * q_{j*g+hh}(i) . k_j(t)
      if (n_keys >= kGemmKeys) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(g), static_cast<int>(n_keys),
                    static_cast<int>(dk), a.scale, qi, static_cast<int>(dk), k + j * khs, static_cast<int>(ks), 0.0f,
                    scores.data(), static_cast<int>(n_keys));
      } else {
        for (int64_t t = 0; t < n_keys; ++t) {
          const float* kt = k + t * ks + j * khs;
          for (int64_t hh = 0; hh < g; ++hh) {
            const float* qh = qi + hh * dk;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int64_t c = 0; c < dk; ++c) s += qh[c] * kt[c];
            scores[hh * n_keys + t] = s * a.scale;
          }
        }
      }
      for (int64_t hh = 0; hh < g; ++hh) {
        float* sr = scores.data() + hh * n_keys;
        const float m = *std::max_element(sr, sr + n_keys);
        const float inv = 1.0f / exp_shift_sum(sr, n_keys, m);
        for (int64_t t = 0; t < n_keys; ++t) sr[t] *= inv;
      }
      if (n_keys >= kGemmKeys) {
        // out heads of the group are contiguous: [g, dv] with row stride dv.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(g), static_cast<int>(dv),
                    static_cast<int>(n_keys), 1.0f, scores.data(), static_cast<int>(n_keys), v + j * vhs,
                    static_cast<int>(vs), 0.0f, out + i * os + j * g * dv, static_cast<int>(dv));
        continue;
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t t = 0; t < n_keys; ++t) {
        const float* vt = v + t * vs + j * vhs;
        for (int64_t hh = 0; hh < g; ++hh) {
          const float p = scores[hh * n_keys + t];
          float* ah = acc.data() + hh * dv;
#pragma omp simd
          for (int64_t c = 0; c < dv; ++c) ah[c] += p * vt[c];
        }
      }
      for (int64_t hh = 0; hh < g; ++hh) std::copy_n(acc.data() + hh * dv, dv, out + i * os + (j * g + hh) * dv);
    }
  });
}

}  // namespace mlar::ops
