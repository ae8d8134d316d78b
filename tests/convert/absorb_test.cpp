// Stored absorption: exact on the repeat conversion (selections), on a repeat model
// with dense up-projections (as after fine-tuning) and on a DeepSeek-layout model
// (NoPE part, q_lora, latent norm, per-layer ranks).
#include <gtest/gtest.h>

#include <cstdio>

#include "common/typed_values.h"
#include "convert/absorb.h"
#include "convert/repeat.h"
#include "convert_sources.h"
#include "mla_reference.h"
#include "random_mla.h"
#include "runtime/random_model.h"
#include "util/error.h"

namespace mlar {
namespace {

std::vector<int32_t> ids(int64_t vocab, size_t n) {
  std::vector<int32_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = int32_t((i * 13 + 3) % size_t(vocab));
  return out;
}

void expect_absorb_exact(const Model& m, const char* what) {
  Model a = m;
  absorb(a);
  ASSERT_TRUE(a.config.mla->absorbed);
  const MlaConfig& mc = *a.config.mla;
  for (size_t l = 0; l < a.weights.layers.size(); ++l) {
    const MlaLayerWeights& w = a.weights.layers[l].mla;
    EXPECT_TRUE(w.w_uk.empty());
    EXPECT_TRUE(w.w_uv.empty());
    EXPECT_TRUE(w.wqr.empty());
    const int64_t r = mc.rank(int64_t(l));
    EXPECT_EQ(w.wo.shape, (Shape{a.config.hidden_size, a.config.num_heads * r}));
  }
  const auto tokens = ids(m.config.vocab_size, 24);
  double scale = 0;
  const double diff = test::max_abs_diff(test::mla_reference_forward(a, tokens), test::mla_reference_forward(m, tokens), &scale);
  std::printf("%s: absorbed vs not (scalar reference): max |dlogit| %.3g (scale %.3g)\n", what, diff, scale);
  EXPECT_LE(diff, 1e-4);
  EXPECT_GT(scale, 0.5);
}

TEST(Absorb, RepeatConversionOfEachSource) {
  for (const auto& name : test::convert_source_names()) {
    SCOPED_TRACE(name);
    expect_absorb_exact(convert_repeat(test::convert_source(name)), name.c_str());
  }
}

TEST(Absorb, RepeatWithDenseUpProjections) { expect_absorb_exact(test::random_finetuned_repeat(3), "dense repeat"); }

TEST(Absorb, DeepSeekLayoutWithQLoraAndLatentNorm) {
  expect_absorb_exact(test::random_deepseek_like_mla(4), "deepseek-like");
}

TEST(Absorb, FoldsAsTheFormulasSay) {
  // W_q'[h] = [W_uk[h]^T W_q[h]_nope ; W_qr[h] W_q[h]_rope], W_o' = W_o blockdiag(W_uv[h]), checked entrywise.
  const Model m = test::random_finetuned_repeat(9);
  Model a = m;
  absorb(a);
  const ModelConfig& c = m.config;
  const int64_t H = c.num_heads, D = c.hidden_size, d = c.head_dim, R = c.kv_dim(), r = c.kv_dim();
  const MlaLayerWeights& w = m.weights.layers[1].mla;
  const MlaLayerWeights& x = a.weights.layers[1].mla;
  ASSERT_EQ(x.wq.shape, (Shape{H * (r + R), D}));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t o = 0; o < R; ++o)
      for (int64_t k = 0; k < D; k += 5) {
        double want = 0;
        for (int64_t i = 0; i < d; ++i) want += double(w.wqr.ptr()[size_t((h * R + o) * d + i)]) * w.wq.ptr()[size_t((h * d + i) * D + k)];
        EXPECT_NEAR(x.wq.ptr()[size_t((h * (r + R) + r + o) * D + k)], want, 1e-5);
        EXPECT_EQ(x.wq.ptr()[size_t((h * (r + R) + o) * D + k)], 0.0f);  // d_n = 0: no NoPE query
      }
  for (int64_t o = 0; o < D; o += 3)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t cc = 0; cc < r; ++cc) {
        double want = 0;
        for (int64_t i = 0; i < d; ++i) want += double(w.wo.ptr()[size_t(o * H * d + h * d + i)]) * w.w_uv.ptr()[size_t((h * d + i) * r + cc)];
        EXPECT_NEAR(x.wo.ptr()[size_t(o * H * r + h * r + cc)], want, 1e-5);
      }
  ASSERT_EQ(x.bq.shape, (Shape{H * (r + R)}));
}

TEST(Absorb, AbsorbedModelIsLeftAsItIs) {
  Model a = convert_repeat(test::convert_source("qwen2"));
  absorb(a);
  const Model once = a;
  absorb(a);
  test::expect_identical(a.weights.layers[0].mla.wq, once.weights.layers[0].mla.wq, "wq");
  test::expect_identical(a.weights.layers[0].mla.wo, once.weights.layers[0].mla.wo, "wo");
}

TEST(Absorb, GqaModelIsRefused) {
  Model g = test::convert_source("llama");
  try {
    absorb(g);
    FAIL() << "absorb accepted a GQA model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs an MLA model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mlar
