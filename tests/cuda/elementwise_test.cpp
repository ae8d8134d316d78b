// ops/cuda/elementwise: each kernel against its CPU op on random data, odd sizes
// included. Tolerances: 1e-6 relative for rmsnorm/rope/add (the same f32/double
// arithmetic, other summation order), 1e-6 for swiglu (expf against the CPU's
// exp_approx, ~2e-7 relative), exact for embedding rows and dtype rounding.
#include "ops/cuda/elementwise.h"

#include "cuda_test_util.h"
#include "ops/elementwise.h"
#include "ops/kv_attention.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

namespace mlar::cudatest {
namespace {

using Elementwise = CudaTest;

TEST_F(Elementwise, RmsnormMatchesCpuOnStridedRows) {
  for (int64_t dim : {8, 64, 333, 4096}) {
    const int64_t n = 7, xs = dim + 3, ys = dim + 5;
    auto x = random_vec(n * xs, 1 + dim), w = random_vec(dim, 2 + dim);
    std::vector<float> ref(static_cast<size_t>(n * ys), 0.0f);
    ops::rmsnorm_strided(x.data(), xs, w.data(), ref.data(), ys, n, dim, 1e-5f);
    Dev dx(x), dw(w), dy = Dev::zeros(ref.size() * 4);
    cuda::rmsnorm(dx.ptr<float>(), xs, dw.ptr<float>(), dy.ptr<float>(), ys, n, dim, 1e-5f);
    auto got = fetch<float>(dy, ref.size());
    EXPECT_LE(max_diff(got, ref), 1e-6 * max_abs(ref)) << "dim " << dim;
  }
}

TEST_F(Elementwise, RopeMatchesCpuForBothPairLayouts) {
  const int64_t n = 9, heads = 5, d = 64, hs = 70, ts = heads * hs + 11;
  std::vector<int64_t> pos(n);
  for (int64_t t = 0; t < n; ++t) pos[static_cast<size_t>(t)] = 1000 * t + 3;
  std::vector<float> inv(d / 2);
  for (int64_t i = 0; i < d / 2; ++i) inv[static_cast<size_t>(i)] = std::pow(500000.0f, -2.0f * i / d);
  for (auto pairs : {ops::RopePairs::Half, ops::RopePairs::Interleaved}) {
    auto x = random_vec(n * ts, 7);
    auto ref = x;
    ops::rope(ref.data(), n, heads, d, hs, ts, pos.data(), inv.data(), pairs);
    Dev dx(x), dp(pos), di(inv);
    cuda::rope(dx.ptr<float>(), n, heads, d, hs, ts, dp.ptr<int64_t>(), di.ptr<float>(), pairs);
    auto got = fetch<float>(dx, x.size());
    EXPECT_LE(max_diff(got, ref), 1e-6 * max_abs(ref));
  }
}

TEST_F(Elementwise, SwigluAndAddMatchCpu) {
  const int64_t n = 1001;
  auto g = random_vec(n, 3, 3.0f), u = random_vec(n, 4);
  std::vector<float> ref(n), sum(n);
  ops::swiglu(g.data(), u.data(), ref.data(), n);
  for (int64_t i = 0; i < n; ++i) sum[static_cast<size_t>(i)] = g[static_cast<size_t>(i)] + u[static_cast<size_t>(i)];
  Dev dg(g), du(u), dout = Dev::zeros(n * 4), dsum = Dev::zeros(n * 4);
  cuda::swiglu(dg.ptr<float>(), du.ptr<float>(), dout.ptr<float>(), n);
  cuda::add(dg.ptr<float>(), du.ptr<float>(), dsum.ptr<float>(), n);
  EXPECT_LE(max_diff(fetch<float>(dout, n), ref), 1e-6 * max_abs(ref));
  EXPECT_EQ(max_diff(fetch<float>(dsum, n), sum), 0.0);
}

TEST_F(Elementwise, EmbedRoundAndWidenAreExactForEveryDtype) {
  const int64_t rows = 50, dim = 37;
  auto table = random_vec(rows * dim, 5);
  std::vector<int32_t> ids = {3, 0, 49, 3, 17};
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    Stored s = store(table, t);
    Dev dt(s.bytes(), s.nbytes()), di(ids), dout = Dev::zeros(ids.size() * dim * 4);
    cuda::embed_rows({dt.ptr<void>(), t, dim}, di.ptr<int32_t>(), dout.ptr<float>(), static_cast<int64_t>(ids.size()),
                     dim);
    auto got = fetch<float>(dout, ids.size() * dim);
    for (size_t r = 0; r < ids.size(); ++r)
      for (int64_t c = 0; c < dim; ++c)
        ASSERT_EQ(got[r * dim + c], s.f32[static_cast<size_t>(ids[r] * dim + c)]) << dtype_name(t);
    // round_rows: f32 rows -> t (nearest even, as util/half.h); widen_rows back.
    Dev src(table), dst = Dev::zeros(s.nbytes()), back = Dev::zeros(table.size() * 4);
    cuda::round_rows(src.ptr<float>(), dim, rows, dim, {dst.ptr<void>(), t, dim});
    cuda::widen_rows({dst.ptr<void>(), t, dim}, rows, dim, back.ptr<float>(), dim);
    EXPECT_EQ(max_diff(fetch<float>(back, table.size()), s.f32), 0.0) << dtype_name(t);
  }
}

}  // namespace
}  // namespace mlar::cudatest
