// ops/cuda/linear: the GEMV path (n <= kGemvRows, vectorised and scalar) and the
// cuBLAS path (SGEMM: exact f32 for F32 weights, TF32 tensor cores for widened BF16/F16
// weights) against ops::matmul_typed on the CPU, for F32, BF16 and F16 weights, with and
// without bias. Both sides multiply the same rounded weights: tolerance 2e-6 of
// sum |w||x| per output for f32 products (summation order only), plus 2^-10 of it where
// TF32 rounds the activations (MLAR_CUDA_GEMM=exact: the f32 bound again); half weights
// widened in blocks of output rows give the same.
#include "ops/cuda/linear.h"

#include <cstdlib>

#include "cuda_test_util.h"
#include "ops/linear.h"
#include "tensor/typed_tensor.h"

namespace mlar::cudatest {
namespace {

using Linear = CudaTest;

void check(int64_t n, int64_t out, int64_t in, DType t, bool bias, int64_t x_pad) {
  SCOPED_TRACE(::testing::Message() << "n " << n << " out " << out << " in " << in << " " << dtype_name(t)
                                    << (bias ? " bias" : "") << " x_pad " << x_pad);
  const int64_t xs = in + x_pad, ys = out + 2;
  auto w = random_vec(out * in, 11 + in), x = random_vec(n * xs, 12 + n), b = random_vec(out, 13);
  Stored ws = store(w, t);
  Tensor wf({out, in}, ws.f32);
  TypedTensor wt = TypedTensor::from_f32(wf, t);  // the same rounded values
  std::vector<float> ref(static_cast<size_t>(n * ys), 0.0f);
  ops::linear(x.data(), xs, wt, bias ? TypedTensor(Tensor({out}, b)) : TypedTensor{}, ref.data(), ys, n);
  Dev dw(ws.bytes(), ws.nbytes()), dx(x), db(b), dy = Dev::zeros(ref.size() * 4);
  cuda::linear(dx.ptr<float>(), xs, {dw.ptr<void>(), t, in}, out, in, bias ? db.ptr<float>() : nullptr,
               dy.ptr<float>(), ys, n);
  auto got = fetch<float>(dy, ref.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double mag = bias ? std::fabs(b[static_cast<size_t>(o)]) : 0.0;
      for (int64_t i = 0; i < in; ++i) mag += std::fabs(ws.f32[o * in + i] * x[r * xs + i]);
      const size_t k = static_cast<size_t>(r * ys + o);
      const double rel = 2e-6 + (n > cuda::kGemvRows && cuda::gemm_uses_tf32(t) ? 1.0 / 1024 : 0.0);
      ASSERT_NEAR(got[k], ref[k], rel * mag + 1e-30) << "row " << r << " out " << o;
    }
}

TEST_F(Linear, GemvMatchesCpuForEveryDtypeAndRowCount) {
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (int64_t n = 1; n <= cuda::kGemvRows; ++n) check(n, 67, 256, t, n % 2 == 0, 0);
}

TEST_F(Linear, GemvScalarPathOnUnalignedShapes) {
  for (DType t : {DType::F32, DType::BF16}) {
    check(3, 29, 13, t, true, 0);   // in % 8 != 0
    check(2, 40, 64, t, false, 1);  // activation rows not 16-byte aligned
  }
}

TEST_F(Linear, CublasPathMatchesCpu) {
  EXPECT_FALSE(cuda::gemm_uses_tf32(DType::F32));
  EXPECT_TRUE(cuda::gemm_uses_tf32(DType::BF16));
  for (DType t : {DType::F32, DType::BF16, DType::F16}) check(37, 96, 200, t, t == DType::BF16, 4);
  check(300, 512, 1024, DType::BF16, true, 0);
  setenv("MLAR_CUDA_GEMM", "exact", 1);  // half weights back on exact f32 products
  EXPECT_FALSE(cuda::gemm_uses_tf32(DType::BF16));
  for (DType t : {DType::BF16, DType::F16}) check(37, 96, 200, t, true, 4);
  unsetenv("MLAR_CUDA_GEMM");
}

// BF16/F16 weights are widened a block of output rows at a time (MLAR_CUDA_WIDEN_FLOATS caps the
// block; 8B's output head would take 2 GB at once): blocks of 7 rows, the last one short, give the
// one-block result's bound.
TEST_F(Linear, WidenedWeightsInBlocksMatchCpu) {
  setenv("MLAR_CUDA_WIDEN_FLOATS", "1400", 1);  // 7 rows of 200
  for (DType t : {DType::BF16, DType::F16}) check(37, 96, 200, t, true, 4);
  setenv("MLAR_CUDA_WIDEN_FLOATS", "1", 1);  // one row at a time
  check(20, 9, 64, DType::BF16, false, 0);
  unsetenv("MLAR_CUDA_WIDEN_FLOATS");
}

}  // namespace
}  // namespace mlar::cudatest
