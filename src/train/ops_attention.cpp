#include "train/ops_attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/exp.h"
#include "ops/parallel.h"
#include "ops/threads.h"
#include "util/error.h"

namespace mlar::train {
namespace {

int I(int64_t v) { return static_cast<int>(v); }

void check(const AttnDims& d) {
  if (d.n_seq <= 0 || d.len <= 0 || d.n_heads <= 0 || d.n_kv_heads <= 0 || d.n_heads % d.n_kv_heads != 0 ||
      d.dk <= 0 || d.dv <= 0)
    fail("attention: bad dimensions ({} sequences of {}, {} heads, {} kv heads, dk {}, dv {})", d.n_seq, d.len,
         d.n_heads, d.n_kv_heads, d.dk, d.dv);
}

// S[len, len] = scale * Q_h K_j^T for one sequence (upper triangle computed, unused).
void scores(const float* q, const float* k, float* S, const AttnDims& d) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, I(d.len), I(d.len), I(d.dk), d.scale, q, I(d.qs()), k,
              I(d.ks()), 0.0f, S, I(d.len));
}

// max of x[0, n) (n > 0), with 8 partial maxima so the loop vectorises.
float row_max(const float* x, int64_t n) {
  float m[8];
  for (int k = 0; k < 8; ++k) m[k] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) m[k] = m[k] < x[i + k] ? x[i + k] : m[k];
  for (; i < n; ++i) m[0] = m[0] < x[i] ? x[i] : m[0];
  for (int k = 1; k < 8; ++k) m[0] = m[0] < m[k] ? m[k] : m[0];
  return m[0];
}

}  // namespace

void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnDims& d) {
  check(d);
  ops::init_cpu_threads();
  const int64_t L = d.len, H = d.n_heads, g = d.n_heads / d.n_kv_heads;
  ops::parallel_for(d.n_seq * H, 1, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> S;  // [len, len] scores, then probabilities
    S.resize(static_cast<size_t>(L * L));
    for (int64_t task = b; task < e; ++task) {
      const int64_t s = task / H, h = task % H, j = h / g;
      const int64_t r0 = s * L;  // first row of the sequence
      const float* qh = q + r0 * d.qs() + h * d.dk;
      const float* kj = k + r0 * d.ks() + j * d.dk;
      const float* vj = v + r0 * d.vs() + j * d.dv;
      scores(qh, kj, S.data(), d);
      for (int64_t t = 0; t < L; ++t) {
        float* row = S.data() + t * L;
        const float mx = row_max(row, t + 1);
        const float z = ops::exp_shift_sum(row, t + 1, mx);  // row = exp(row - mx), as the runtime's softmax
        const float inv = 1.0f / z;
        for (int64_t u = 0; u <= t; ++u) row[u] *= inv;
        std::fill(row + t + 1, row + L, 0.0f);
        lse[(r0 + t) * H + h] = mx + std::log(z);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(L), I(d.dv), I(L), 1.0f, S.data(), I(L), vj,
                  I(d.vs()), 0.0f, out + r0 * d.os() + h * d.dv, I(d.os()));
    }
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* lse, const float* dout,
                        float* dq, float* dk, float* dv, const AttnDims& d) {
  check(d);
  ops::init_cpu_threads();
  const int64_t L = d.len, H = d.n_heads, J = d.n_kv_heads, g = H / J;
  const int64_t dqs = H * d.dk, dks = J * d.dk, dvs = J * d.dv;  // packed gradient strides
  ops::parallel_for(d.n_seq * J, 1, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> P, dP;  // [len, len] each
    P.resize(static_cast<size_t>(L * L));
    dP.resize(static_cast<size_t>(L * L));
    for (int64_t task = b; task < e; ++task) {
      const int64_t s = task / J, j = task % J, r0 = s * L;
      const float* kj = k + r0 * d.ks() + j * d.dk;
      const float* vj = v + r0 * d.vs() + j * d.dv;
      float* dkj = dk + r0 * dks + j * d.dk;
      float* dvj = dv + r0 * dvs + j * d.dv;
      for (int64_t t = 0; t < L; ++t) {
        std::fill_n(dkj + t * dks, d.dk, 0.0f);
        std::fill_n(dvj + t * dvs, d.dv, 0.0f);
      }
      for (int64_t h = j * g; h < (j + 1) * g; ++h) {
        const float* qh = q + r0 * d.qs() + h * d.dk;
        const float* doh = dout + r0 * d.os() + h * d.dv;
        scores(qh, kj, P.data(), d);
        for (int64_t t = 0; t < L; ++t) {
          float* row = P.data() + t * L;
          ops::exp_shift_sum(row, t + 1, lse[(r0 + t) * H + h]);  // P = exp(S - lse)
          std::fill(row + t + 1, row + L, 0.0f);
        }
        // dP = dO_h V_j^T  [len, len]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, I(L), I(L), I(d.dv), 1.0f, doh, I(d.os()), vj,
                    I(d.vs()), 0.0f, dP.data(), I(L));
        // dS = scale * P (dP - rowsum(P dP)), into dP
        for (int64_t t = 0; t < L; ++t) {
          const float* p = P.data() + t * L;
          float* dp = dP.data() + t * L;
          double acc = 0;
          for (int64_t u = 0; u <= t; ++u) acc += static_cast<double>(p[u]) * dp[u];
          const float D = static_cast<float>(acc);
          for (int64_t u = 0; u <= t; ++u) dp[u] = d.scale * p[u] * (dp[u] - D);
          std::fill(dp + t + 1, dp + L, 0.0f);
        }
        // dq_h = dS K_j;  dk_j += dS^T Q_h;  dv_j += P^T dO_h
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(L), I(d.dk), I(L), 1.0f, dP.data(), I(L), kj,
                    I(d.ks()), 0.0f, dq + r0 * dqs + h * d.dk, I(dqs));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I(L), I(d.dk), I(L), 1.0f, dP.data(), I(L), qh,
                    I(d.qs()), 1.0f, dkj, I(dks));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I(L), I(d.dv), I(L), 1.0f, P.data(), I(L), doh,
                    I(d.os()), 1.0f, dvj, I(dvs));
      }
    }
  });
}

}  // namespace mlar::train
