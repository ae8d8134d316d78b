// The repeat conversion's tensors and config are exactly MLA.md §3, and the
// arguments that cannot keep the model exact are refused with the reason.
#include <gtest/gtest.h>

#include <cmath>

#include "common/typed_values.h"
#include "convert/absorb.h"
#include "convert/convert.h"
#include "convert/repeat.h"
#include "convert_sources.h"
#include "expect_error.h"

namespace mlar {
namespace {

using test::error_of;

TEST(ConvertRepeat, ConfigIsSection3) {
  for (const auto& name : test::convert_source_names()) {
    SCOPED_TRACE(name);
    const Model& g = test::convert_source(name);
    const Model m = convert_repeat(g);
    ASSERT_TRUE(m.config.mla);
    const MlaConfig& c = *m.config.mla;
    const int64_t d = g.config.head_dim, nkv = g.config.num_kv_heads;
    EXPECT_EQ(c.rope_mode, RopeMode::Repeat);
    EXPECT_EQ(c.num_rope_heads, nkv);
    EXPECT_EQ(c.qk_rope_head_dim, d);
    EXPECT_EQ(c.qk_nope_head_dim, 0);
    EXPECT_EQ(c.kv_lora_rank, nkv * d);
    EXPECT_TRUE(c.layer_kv_lora_rank.empty());
    EXPECT_EQ(c.v_head_dim, d);
    EXPECT_EQ(c.q_rope_in_dim, d);
    EXPECT_EQ(c.q_lora_rank, 0);
    EXPECT_FALSE(c.latent_norm);
    EXPECT_FALSE(c.absorbed);
    EXPECT_DOUBLE_EQ(c.softmax_scale, 1.0 / std::sqrt(double(d)));
    // RoPE is the source's: theta, scaling, layout; the GQA fields still describe the source.
    EXPECT_EQ(m.config.rope_theta, g.config.rope_theta);
    EXPECT_EQ(m.config.rope_scaling.type, g.config.rope_scaling.type);
    EXPECT_EQ(m.config.rope_layout, g.config.rope_layout);
    EXPECT_EQ(m.config.num_kv_heads, nkv);
    EXPECT_EQ(m.config.head_dim, d);
    // The cache is the GQA cache: r + n_r d_r = 2 n_kv d.
    EXPECT_EQ(m.config.kv_values_per_token_layer(0), 2 * nkv * d);
    EXPECT_EQ(m.tokenizer, g.tokenizer);
  }
}

TEST(ConvertRepeat, TensorsAreTheIdentityFactorisation) {
  for (const auto& name : test::convert_source_names()) {
    SCOPED_TRACE(name);
    const Model& g = test::convert_source(name);
    const Model m = convert_repeat(g);
    const int64_t H = g.config.num_heads, d = g.config.head_dim, R = g.config.kv_dim(), grp = g.config.group_size();
    for (size_t l = 0; l < g.weights.layers.size(); ++l) {
      const LayerWeights& G = g.weights.layers[l];
      const LayerWeights& L = m.weights.layers[l];
      EXPECT_TRUE(L.wq.empty() && L.wk.empty() && L.wv.empty() && L.wo.empty());
      test::expect_identical(L.mla.wq, G.wq, "wq");      // q = W_q x
      test::expect_identical(L.mla.bq, G.bq, "bq");
      test::expect_identical(L.mla.w_kr, G.wk, "w_kr");  // k_pe = W_k x
      test::expect_identical(L.mla.b_kr, G.bk, "b_kr");
      test::expect_identical(L.mla.w_dkv, G.wv, "w_dkv");  // c = W_v x
      test::expect_identical(L.mla.b_dkv, G.bv, "b_dkv");
      test::expect_identical(L.mla.wo, G.wo, "wo");
      EXPECT_TRUE(L.mla.w_uk.empty());
      EXPECT_TRUE(L.mla.kv_norm.empty());
      ASSERT_EQ(L.mla.wqr.shape, (Shape{H, R, d}));
      ASSERT_EQ(L.mla.w_uv.shape, (Shape{H * d, R}));
      for (int64_t h = 0; h < H; ++h)
        for (int64_t o = 0; o < R; ++o)
          for (int64_t i = 0; i < d; ++i) {
            const float sel = (o == (h / grp) * d + i) ? 1.0f : 0.0f;  // block j(h) = h / g
            EXPECT_EQ(L.mla.wqr.ptr()[size_t((h * R + o) * d + i)], sel);
            EXPECT_EQ(L.mla.w_uv.ptr()[size_t((h * d + i) * R + o)], sel);
          }
    }
  }
}

TEST(ConvertRepeat, SourceLatentLayoutIsAccepted) {
  const Model& g = test::convert_source("stories-bin");
  RepeatOptions o;
  o.num_kv_heads = 4;
  o.head_dim = 8;
  int64_t calls = 0;
  o.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 5);
    EXPECT_EQ(done, ++calls);
  };
  const Model m = convert_repeat(g, o);
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(m.config.mla->num_rope_heads, 4);
  EXPECT_NO_THROW(check_repeat_latent_layout(g.config, 0, 0));
  EXPECT_NO_THROW(check_repeat_latent_layout(g.config, 4, 0));
  EXPECT_NO_THROW(check_repeat_latent_layout(g.config, 0, 8));
}

TEST(ConvertRepeat, OtherSplitOfTheSameWidthIsRefusedForItsFrequencies) {
  const Model& g = test::convert_source("stories-bin");  // 4 kv heads x 8
  RepeatOptions o;
  o.num_kv_heads = 2;
  o.head_dim = 16;
  const std::string msg = error_of([&] { convert_repeat(g, o); });
  EXPECT_EQ(msg,
            "--num-kv-heads 2 --head-dim 16: rope heads of 16 would rotate with frequencies theta^(-2i/16) instead "
            "of the source's theta^(-2i/8); only 4 x 8 keeps the model exact");
  EXPECT_HAS(error_of([&] { check_repeat_latent_layout(g.config, 8, 4); }), "theta^(-2i/4)");
}

TEST(ConvertRepeat, LatentOfAnotherWidthIsRefused) {
  const Model& g = test::convert_source("stories-bin");
  const std::string smaller = error_of([&] { check_repeat_latent_layout(g.config, 2, 8); });
  EXPECT_HAS(smaller, "--num-kv-heads 2 --head-dim 8");
  EXPECT_HAS(smaller, "2 x 8 = 16 values cannot hold the source's 4 x 8 = 32");
  EXPECT_HAS(smaller, "truncate");
  const std::string larger = error_of([&] { check_repeat_latent_layout(g.config, 8, 8); });
  EXPECT_HAS(larger, "pad");
  EXPECT_HAS(larger, "exact only with the source layout 4 x 8");
  // Only one of the two given: the other is the source's.
  EXPECT_HAS(error_of([&] { check_repeat_latent_layout(g.config, 2, 0); }), "2 x 8 = 16 values");
  EXPECT_HAS(error_of([&] { check_repeat_latent_layout(g.config, -1, 8); }), "must be positive");
}

TEST(ConvertRepeat, MlaModelIsRefused) {
  const Model m = convert_repeat(test::convert_source("mistral"));
  const std::string msg = error_of([&] { convert_repeat(m); });
  EXPECT_HAS(msg, "already MLA (rope mode repeat)");
  Model moved = m;
  EXPECT_HAS(error_of([&] { convert_repeat(std::move(moved)); }), "already MLA (rope mode repeat)");
}

TEST(ConvertRopeMode, RepeatAndExtend) {
  EXPECT_EQ(parse_rope_mode("repeat"), RopeMode::Repeat);
  EXPECT_EQ(parse_rope_mode("extend"), RopeMode::Extend);
  const std::string unknown = error_of([] { parse_rope_mode("rotate"); });
  EXPECT_HAS(unknown, "--rope-mode 'rotate' is unknown (available: repeat, extend)");
  ConvertOptions o;
  o.rope_mode = "extend";  // needs calibration text: convert_extend (tests/extend)
  EXPECT_HAS(error_of([&] { convert_model(Model(test::convert_source("llama")), o); }), "needs calibration text");
}

TEST(ConvertRopeMode, ConvertModelAbsorbsOnRequest) {
  ConvertOptions o;
  o.absorb = true;
  const Model m = convert_model(Model(test::convert_source("qwen2")), o);
  EXPECT_TRUE(m.config.mla->absorbed);
  EXPECT_TRUE(m.weights.layers[0].mla.w_uv.empty());
}

}  // namespace
}  // namespace mlar
