#include "ops/cuda/nll.h"

#include <cfloat>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/device.h"
#include "ops/cuda/typed_load.cuh"

namespace mlar::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void nll_kernel(const float* logits, int64_t stride, int64_t vocab, const int32_t* targets, double* nll) {
  const float* x = logits + blockIdx.x * stride;
  __shared__ float smax[kThreads / 32];
  __shared__ double ssum[kThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float mx = -FLT_MAX;
  for (int64_t c = threadIdx.x; c < vocab; c += kThreads) mx = fmaxf(mx, x[c]);
  mx = detail::warp_max(mx);
  if (lane == 0) smax[warp] = mx;
  __syncthreads();
  mx = smax[0];
  for (int w = 1; w < kThreads / 32; ++w) mx = fmaxf(mx, smax[w]);
  double s = 0;
  for (int64_t c = threadIdx.x; c < vocab; c += kThreads) s += exp(static_cast<double>(x[c]) - mx);
  s = detail::warp_sum(s);
  if (lane == 0) ssum[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < kThreads / 32; ++w) total += ssum[w];
    nll[blockIdx.x] = log(total) + mx - static_cast<double>(x[targets[blockIdx.x]]);
  }
}

__global__ void argmax_kernel(const float* logits, int64_t stride, int64_t vocab, int32_t* out) {
  const float* x = logits + blockIdx.x * stride;
  __shared__ float sv[kThreads];
  __shared__ int64_t si[kThreads];
  float best = -INFINITY;
  int64_t bi = vocab;
  for (int64_t c = threadIdx.x; c < vocab; c += kThreads)
    if (x[c] > best || (bi == vocab && x[c] == best)) {
      best = x[c];
      bi = c;
    }
  sv[threadIdx.x] = best;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) {
      const float v = sv[threadIdx.x + o];
      const int64_t i = si[threadIdx.x + o];
      if (v > sv[threadIdx.x] || (v == sv[threadIdx.x] && i < si[threadIdx.x])) {
        sv[threadIdx.x] = v;
        si[threadIdx.x] = i;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<int32_t>(si[0] == vocab ? 0 : si[0]);
}

}  // namespace

void row_nll(const float* logits, int64_t stride, int64_t n, int64_t vocab, const int32_t* targets, double* nll) {
  if (n <= 0) return;
  nll_kernel<<<static_cast<unsigned>(n), kThreads>>>(logits, stride, vocab, targets, nll);
  check_launch("row_nll");
}

void argmax_rows(const float* logits, int64_t stride, int64_t n, int64_t vocab, int32_t* out) {
  if (n <= 0) return;
  argmax_kernel<<<static_cast<unsigned>(n), kThreads>>>(logits, stride, vocab, out);
  check_launch("argmax_rows");
}

}  // namespace mlar::cuda
