// Calibration on the GPU (convert --device cuda) against the CPU:
//   add_moment (ops/cuda/moment.h) against the sum of [x;1][x;1]^T in double on the host;
//   CudaCarriedStates against CpuCarriedStates: attention inputs, second moments and the
//   states advanced through a source GQA layer and a converted MLA layer, for stories260K
//   (F32 weights: exact f32 products) and llama3ish (BF16 weights: TF32 prompts);
//   convert_extend with device Cuda: the same stage perplexities as on the CPU within
//   0.5% on stories260K (issue 15's bound), with the choices fixed and held out.
// Tolerances: moments 1e-9 relative (double sums in other orders); attention inputs
// 1e-5 of their magnitude after a layer with F32 weights (f32, other summation orders),
// 2e-2 with BF16 weights on TF32 (2^-10 per product, through a layer's attention, MLP and
// the next norm); second moments the same bounds relative to their largest entry.
#include <cmath>
#include <cstdio>

#include "common/test_data.h"
#include "convert/extend.h"
#include "cuda_test_util.h"
#include "real_models.h"
#include "io/load_model.h"
#include "ops/cuda/moment.h"
#include "runtime/carried_states.h"
#include "runtime/cuda/cuda_carried_states.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace mlar::cudatest {
namespace {

using CudaCalibrationTest = CudaTest;
using test::data_path;


std::vector<int32_t> text_ids(const Model& m, const char* file) {
  return m.tokenizer->encode(read_utf8_file(data_path(file)));
}

TokenWindows windows_of(const Model& m, int64_t count, int64_t len) {
  const auto ids = text_ids(m, "text/tinystories-dev.txt");
  TokenWindows w;
  for (int64_t i = 0; i < count; ++i) {
    std::vector<int32_t> win{m.config.bos_token_id};
    win.insert(win.end(), ids.begin() + i * (len - 1), ids.begin() + (i + 1) * (len - 1));
    w.push_back(std::move(win));
  }
  return w;
}

TEST_F(CudaCalibrationTest, MomentMatchesTheHostSum) {
  for (auto [n, dim, stride] : {std::tuple<int64_t, int64_t, int64_t>{300, 37, 40}, {5000, 64, 64}, {1, 7, 7}}) {
    const auto x = random_vec(n * stride, 91 + static_cast<uint64_t>(n), 1.5f);
    const int64_t w = dim + 1;
    std::vector<double> ref(static_cast<size_t>(w * w), 0.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < w; ++i)
        for (int64_t j = i; j < w; ++j) {
          const double a = i < dim ? x[static_cast<size_t>(t * stride + i)] : 1.0;
          const double b = j < dim ? x[static_cast<size_t>(t * stride + j)] : 1.0;
          ref[static_cast<size_t>(i * w + j)] += a * b;
        }
    const Dev dx(x);
    std::vector<double> start(static_cast<size_t>(w * w), 0.5);  // accumulates onto what is there
    const Dev S(start);
    Dev chunk = Dev::zeros(static_cast<size_t>(n * w) * sizeof(double));
    cuda::add_moment(dx.ptr<float>(), stride, n, dim, S.ptr<double>(), chunk.ptr<double>());
    const auto got = fetch<double>(S, static_cast<size_t>(w * w));
    for (int64_t i = 0; i < w; ++i)
      for (int64_t j = 0; j < w; ++j) {
        const size_t k = static_cast<size_t>(i * w + j);
        if (j < i) {
          ASSERT_EQ(got[k], 0.5) << "lower triangle touched at " << i << "," << j;
          continue;
        }
        ASSERT_NEAR(got[k], ref[k] + 0.5, 1e-9 * (std::fabs(ref[k]) + 1.0)) << i << "," << j << " n " << n;
      }
  }
}

// Relative max difference of two equally long vectors against the larger magnitude.
template <typename T>
double rel_diff(const std::vector<T>& a, const std::vector<T>& b) {
  double m = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    s = std::max(s, std::fabs(static_cast<double>(a[i])));
  }
  return s > 0 ? m / s : m;
}

// Every window's attention inputs of layer l, and the second moment's sum (CPU: from them).
struct LayerView {
  std::vector<float> x;
  std::vector<double> sum;
};
LayerView view(const CarriedStates& s, const Model& m, int64_t l) {
  LayerView v;
  const LayerWeights& L = m.weights.layers[static_cast<size_t>(l)];
  const int64_t D = m.config.hidden_size, w = D + 1;
  v.sum = s.moment_sum(m.config, L);
  const bool host = v.sum.empty();
  if (host) v.sum.assign(static_cast<size_t>(w * w), 0.0);
  s.attention_inputs(m.config, L, [&](int64_t, const float* x, int64_t n) {
    v.x.insert(v.x.end(), x, x + n * D);
    if (!host) return;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < w; ++i)
        for (int64_t j = i; j < w; ++j)
          v.sum[static_cast<size_t>(i * w + j)] +=
              (i < D ? x[t * D + i] : 1.0) * static_cast<double>(j < D ? x[t * D + j] : 1.0);
  });
  for (int64_t i = 0; i < w; ++i)  // compare upper triangles only
    for (int64_t j = 0; j < i; ++j) v.sum[static_cast<size_t>(i * w + j)] = 0;
  return v;
}

TEST_F(CudaCalibrationTest, CarriedStatesMatchTheCpu) {
  struct Row {
    const Model* m;
    double tol;
  };
  for (Row r : {Row{&stories(), 1e-5}, Row{&llama3ish(), 2e-2}}) {
    const Model& m = *r.m;
    SCOPED_TRACE(m.source);
    const TokenWindows w = windows_of(m, 6, 64);
    // An MLA version of the model to advance through (fixed choices, small calibration).
    ExtendOptions o;
    o.kv_budget = 0.5;
    o.qk_rope_dim = m.config.head_dim / 2;
    o.attn_key_balance = 0.3;
    o.rope_strategies.clear();
    o.calib_len = 64;
    o.progress = false;
    const Model mla = convert_extend(m, o, text_ids(m, "text/tinystories-calib.txt"));
    CpuCarriedStates cpu(m, w);
    CudaCarriedStates gpu(m, w);
    EXPECT_EQ(cpu.bytes(), gpu.bytes());
    const int64_t L = m.config.num_layers;
    for (int64_t l = 0; l < std::min<int64_t>(L, 3); ++l) {
      const LayerView a = view(cpu, m, l), b = view(gpu, m, l);
      const double dx = rel_diff(a.x, b.x), ds = rel_diff(a.sum, b.sum);
      std::printf("[ calibration ] %s layer %lld: inputs %.2e, moment %.2e\n", m.source.c_str(),
                  static_cast<long long>(l), dx, ds);
      EXPECT_LE(dx, r.tol) << "layer " << l;
      EXPECT_LE(ds, r.tol) << "layer " << l;
      // Layer 0 through the source's GQA, later ones through the converted MLA layers.
      const LayerWeights& src_l = m.weights.layers[static_cast<size_t>(l)];
      if (l == 0) {
        cpu.advance(m.config, l, src_l, nullptr);
        gpu.advance(m.config, l, src_l, nullptr);
      } else {
        const MlaLayerWeights& mw = mla.weights.layers[static_cast<size_t>(l)].mla;
        cpu.advance(mla.config, l, src_l, &mw);
        gpu.advance(mla.config, l, src_l, &mw);
      }
    }
  }
}

// convert_extend's stage perplexities (source, rope-separated, low rank, final) on the GPU
// against the CPU, within 0.5%.
TEST_F(CudaCalibrationTest, ConvertOnCudaGivesTheCpuStagePerplexities) {
  const Model& m = stories();
  const auto calib = text_ids(m, "text/tinystories-calib.txt");
  auto eval = text_ids(m, "text/tinystories-dev.txt");
  eval.resize(8192);
  for (bool fixed : {true, false}) {
    SCOPED_TRACE(fixed ? "fixed choices" : "held-out choices");
    ExtendOptions o;
    o.kv_budget = 0.25;
    o.latent_norm = LatentNorm::Calibrated;  // the exportable form: the reservoir's host copies too
    o.calib_tokens = 32768;
    o.eval_ids = eval;
    o.progress = false;
    if (fixed) {
      o.qk_rope_dim = 6;
      o.attn_key_balance = 0.1;
      o.rope_strategies.clear();
    }
    ExtendReport rc, rg;
    convert_extend(m, o, calib, &rc);
    o.device = Device::Cuda;
    convert_extend(m, o, calib, &rg);
    EXPECT_EQ(rc.qk_rope_dim, rg.qk_rope_dim);
    EXPECT_EQ(rc.key_balance, rg.key_balance);
    ASSERT_EQ(rc.stages.size(), rg.stages.size());
    for (size_t i = 0; i < rc.stages.size(); ++i) {
      ASSERT_TRUE(rc.stages[i].ppl && rg.stages[i].ppl);
      const double a = *rc.stages[i].ppl, b = *rg.stages[i].ppl;
      std::printf("[ convert ] %s stage %-15s cpu %.4f cuda %.4f (%+.3f%%)\n", fixed ? "fixed" : "held-out",
                  rc.stages[i].name.c_str(), a, b, 100.0 * (b / a - 1.0));
      EXPECT_NEAR(b / a, 1.0, 5e-3) << rc.stages[i].name;
    }
    for (size_t i = 0; i < std::min(rc.candidates.size(), rg.candidates.size()); ++i)
      EXPECT_NEAR(rg.candidates[i].heldout_ppl / rc.candidates[i].heldout_ppl, 1.0, 5e-3) << "candidate " << i;
  }
}

}  // namespace
}  // namespace mlar::cudatest
