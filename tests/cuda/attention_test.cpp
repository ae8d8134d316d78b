// ops/cuda/attention against ops::kv_attention on the CPU (the same rows, held as
// F32 | BF16 | F16), for GQA groups, MLA's absorbed form (one shared row set, keys
// [c | k_pe], values c) and batches of sequences; decode (n_q 1..3) and prefill
// (n_q 40) with earlier cached tokens.
// Tolerances, relative to the largest |value| of the rows:
// - tiled kernel: 2e-5 (f32 arithmetic on the same values; sums in another order,
//   __expf against the CPU's exp_approx);
// - tensor-core MLA kernel: queries are given already rounded to bf16 with scale 1
//   (so only the probabilities' bf16 rounding differs, |dp| <= 2^-9 p): 4e-3.
#include "ops/cuda/attention.h"

#include <cstdlib>
#include <string>

#include "cuda_test_util.h"
#include "ops/cuda/device.h"
#include "util/error.h"
#include "ops/kv_attention.h"

namespace mlar::cudatest {
namespace {

using Attention = CudaTest;

struct Case {
  int64_t n_heads, n_kv, dk, dv, n_q, q_start;
  DType dtype;
  bool shared_rows;  // MLA: keys and values are the same rows (values the first dv columns)
  int64_t batch = 1;
};

// Runs one case on both sides; returns max |gpu - cpu| / max |row value|.
double run_case(const Case& c, uint64_t seed, bool round_q, cuda::AttentionPath* path = nullptr) {
  const int64_t tokens = c.q_start + c.n_q;
  const int64_t kstride = c.shared_rows ? c.dk : c.n_kv * c.dk;
  const int64_t vstride = c.shared_rows ? c.dk : c.n_kv * c.dv;
  const int64_t qn = c.n_q * c.n_heads * c.dk, on = c.n_q * c.n_heads * c.dv;
  auto q = random_vec(c.batch * qn, seed, 1.0f / std::sqrt(static_cast<float>(c.dk)));
  if (round_q) q = store(q, DType::BF16).f32;
  Stored k = store(random_vec(c.batch * tokens * kstride, seed + 1), c.dtype);
  Stored v = c.shared_rows ? k : store(random_vec(c.batch * tokens * vstride, seed + 2), c.dtype);
  ops::AttentionDims d;
  d.n_q = c.n_q;
  d.n_heads = c.n_heads;
  d.n_kv_heads = c.n_kv;
  d.dk = c.dk;
  d.dv = c.dv;
  d.q_start = c.q_start;
  d.scale = round_q ? 1.0f : 1.0f / std::sqrt(static_cast<float>(c.dk));
  std::vector<float> ref(static_cast<size_t>(c.batch * on));
  for (int64_t b = 0; b < c.batch; ++b) {
    const size_t esz = dtype_size(c.dtype);
    ops::TypedRows kr{static_cast<const char*>(k.bytes()) + b * tokens * kstride * esz, c.dtype, kstride};
    ops::TypedRows vr{static_cast<const char*>(v.bytes()) + b * tokens * vstride * esz, c.dtype, vstride};
    ops::kv_attention(q.data() + b * qn, kr, vr, ref.data() + b * on, d);
  }
  Dev dq(q), dk(k.bytes(), k.nbytes()), dout = Dev::zeros(ref.size() * 4);
  Dev dv = c.shared_rows ? Dev() : Dev(v.bytes(), v.nbytes());
  ops::TypedRows gk{dk.ptr<void>(), c.dtype, kstride};
  ops::TypedRows gv{c.shared_rows ? dk.ptr<void>() : dv.ptr<void>(), c.dtype, vstride};
  if (path) *path = cuda::attention_path(gk, gv, d);
  cuda::AttentionBatch batch{c.batch, qn, tokens * kstride, on};
  if (!c.shared_rows && c.batch > 1) ADD_FAILURE() << "batched cases use shared rows";
  cuda::attention(dq.ptr<float>(), gk, gv, dout.ptr<float>(), d, batch);
  auto got = fetch<float>(dout, ref.size());
  return max_diff(got, ref) / std::max(max_abs(k.f32), max_abs(v.f32));
}

std::string name(const Case& c) {
  return ::testing::PrintToString(c.n_heads) + "/" + std::to_string(c.n_kv) + " heads dk " + std::to_string(c.dk) +
         " dv " + std::to_string(c.dv) + " n_q " + std::to_string(c.n_q) + " q_start " + std::to_string(c.q_start) +
         " " + dtype_name(c.dtype) + " batch " + std::to_string(c.batch);
}

TEST_F(Attention, GqaTiledMatchesCpu) {
  uint64_t seed = 100;
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    for (Case c : {Case{8, 4, 8, 8, 1, 0, t, false}, Case{8, 4, 8, 8, 1, 300, t, false},
                   Case{32, 8, 128, 128, 1, 2000, t, false}, Case{6, 3, 20, 12, 3, 77, t, false},
                   Case{8, 2, 64, 64, 40, 0, t, false}, Case{8, 2, 64, 64, 40, 130, t, false},
                   Case{40, 2, 64, 64, 2, 90, t, false}}) {
      cuda::AttentionPath path;
      EXPECT_LE(run_case(c, seed++, false, &path), 2e-5) << name(c);
      EXPECT_EQ(path, cuda::AttentionPath::Tiled) << name(c);
    }
  }
}

TEST_F(Attention, MlaSharedRowsTiledMatchesCpu) {
  uint64_t seed = 200;
  for (DType t : {DType::F32, DType::BF16})
    for (Case c : {Case{8, 1, 40, 32, 1, 500, t, true}, Case{16, 1, 72, 64, 2, 33, t, true},
                   Case{4, 1, 24, 16, 40, 10, t, true}}) {
      cuda::AttentionPath path;
      EXPECT_LE(run_case(c, seed++, false, &path), 2e-5) << name(c);
      EXPECT_EQ(path, cuda::AttentionPath::Tiled) << name(c);
    }
}

TEST_F(Attention, MlaTensorCoreMatchesCpu) {
  uint64_t seed = 300;
  for (Case c : {Case{16, 1, 576, 512, 1, 0, DType::BF16, true}, Case{16, 1, 576, 512, 1, 4999, DType::BF16, true},
                 Case{32, 1, 512, 448, 1, 1031, DType::BF16, true}, Case{128, 1, 576, 512, 1, 700, DType::BF16, true},
                 Case{40, 1, 320, 256, 2, 95, DType::BF16, true}, Case{16, 1, 1024, 960, 1, 300, DType::BF16, true},
                 Case{8, 1, 128, 64, 3, 64, DType::BF16, true}, Case{16, 1, 576, 512, 40, 20, DType::BF16, true},
                 Case{16, 1, 576, 512, 1, 333, DType::BF16, true, 5}}) {
    cuda::AttentionPath path;
    EXPECT_LE(run_case(c, seed, true, &path), 4e-3) << name(c);
    EXPECT_EQ(path, cuda::AttentionPath::TensorCore) << name(c);
    // The same case on the tiled kernel: the f32 arithmetic of the CPU.
    setenv("MLAR_CUDA_ATTN", "tiled", 1);
    EXPECT_LE(run_case(c, seed, true, &path), 2e-5) << name(c) << " (tiled)";
    EXPECT_EQ(path, cuda::AttentionPath::Tiled);
    unsetenv("MLAR_CUDA_ATTN");
    ++seed;
  }
}

// Any number of key ranges merges to the same result (MLAR_CUDA_SPLITS fixes the count; the plan caps it
// at one range per two tiles): the merge kernel's weights over 1, odd and many ranges, both kernels.
TEST_F(Attention, AnySplitCountMergesToTheCpuResult) {
  uint64_t seed = 500;
  for (int splits : {1, 3, 7, 64, 300}) {
    setenv("MLAR_CUDA_SPLITS", std::to_string(splits).c_str(), 1);
    for (Case c : {Case{32, 8, 128, 128, 1, 4000, DType::BF16, false}, Case{8, 2, 64, 64, 3, 900, DType::F32, false}})
      EXPECT_LE(run_case(c, seed++, false), 2e-5) << name(c) << " splits " << splits;
    const Case mla{128, 1, 576, 512, 1, 3000, DType::BF16, true};
    EXPECT_LE(run_case(mla, seed++, true), 4e-3) << name(mla) << " splits " << splits;
    unsetenv("MLAR_CUDA_SPLITS");
  }
  // The plan's own choice: the tensor-core kernel (one block per SM) gets at most one round of blocks, and
  // at least half of one where the keys allow (ranges are whole multiples of the tile).
  Dev rows = Dev::zeros(16);
  const ops::TypedRows r{rows.ptr<void>(), DType::BF16, 576};
  const int sms = cuda::device_info().sm_count;
  for (int64_t batch : {1, 8, 64}) {
    const ops::AttentionDims d = mla_decode_dims(128, 576, 512, 65535);
    const cuda::AttentionPlan pl = cuda::attention_plan(r, r, d, {batch, 0, 0, 0});
    EXPECT_EQ(pl.path, cuda::AttentionPath::TensorCore);
    const int64_t blocks = batch * pl.splits * pl.head_tiles;
    EXPECT_LE(blocks, sms) << "batch " << batch;
    EXPECT_GE(2 * blocks, sms) << "batch " << batch;
  }
}

TEST_F(Attention, BatchedGqaRowsUseTheirOwnSequence) {
  // Batches of distinct sequences: equal to running each alone (checked through the CPU).
  EXPECT_LE(run_case(Case{8, 1, 40, 32, 1, 257, DType::F32, true, 4}, 400, false), 2e-5);
}

TEST_F(Attention, KeyScalesAreRefused) {
  ops::AttentionDims d;
  d.n_q = 1;
  d.n_heads = 1;
  d.n_kv_heads = 1;
  d.dk = d.dv = 8;
  float s = 1.0f;
  d.key_scale = &s;
  EXPECT_THROW(cuda::attention(nullptr, {}, {}, nullptr, d), Error);
}

}  // namespace
}  // namespace mlar::cudatest
