// ops/cuda/nll: per-row negative log-likelihood against ops::log_sum_exp (double on
// both sides: 1e-9 relative), and argmax against the first largest index.
#include "ops/cuda/nll.h"

#include "cuda_test_util.h"
#include "ops/softmax.h"

namespace mlar::cudatest {
namespace {

using Nll = CudaTest;

TEST_F(Nll, RowNllAndArgmaxMatchCpu) {
  const int64_t n = 13, vocab = 32003, stride = vocab + 5;
  auto logits = random_vec(n * stride, 21, 4.0f);
  logits[5 * stride + 77] = 40.0f;  // a clear maximum
  logits[6 * stride + 10] = logits[6 * stride + 20] = 50.0f;  // a tie: the first index wins
  std::vector<int32_t> targets(n);
  for (int64_t r = 0; r < n; ++r) targets[static_cast<size_t>(r)] = static_cast<int32_t>((r * 7919) % vocab);
  Dev dl(logits), dt(targets), dn = Dev::zeros(n * 8), da = Dev::zeros(n * 4);
  cuda::row_nll(dl.ptr<float>(), stride, n, vocab, dt.ptr<int32_t>(), dn.ptr<double>());
  cuda::argmax_rows(dl.ptr<float>(), stride, n, vocab, da.ptr<int32_t>());
  auto nll = fetch<double>(dn, n);
  auto am = fetch<int32_t>(da, n);
  for (int64_t r = 0; r < n; ++r) {
    const float* row = logits.data() + r * stride;
    const double ref = ops::log_sum_exp(row, vocab) - row[targets[static_cast<size_t>(r)]];
    EXPECT_NEAR(nll[static_cast<size_t>(r)], ref, 1e-9 * std::fabs(ref) + 1e-9) << "row " << r;
    int64_t best = 0;
    for (int64_t c = 1; c < vocab; ++c)
      if (row[c] > row[best]) best = c;
    EXPECT_EQ(am[static_cast<size_t>(r)], best) << "row " << r;
  }
  EXPECT_EQ(am[5], 77);
  EXPECT_EQ(am[6], 10);
}

}  // namespace
}  // namespace mlar::cudatest
