// deepseek_layout(): every exact rewrite keeps the runtime's logits, the result is in
// the layout the writers need, and explicit rope frequencies map to standard RoPE.
#include <gtest/gtest.h>

#include "common/typed_values.h"
#include "export_models.h"
#include "io/deepseek_export.h"
#include "model/weights.h"

namespace mlar {
namespace {

using test::DsKnobs;

bool has_note(const std::vector<std::string>& notes, const std::string& part) {
  for (const auto& n : notes)
    if (n.find(part) != std::string::npos) return true;
  return false;
}

struct Case {
  const char* name;
  DsKnobs k;
  bool gguf_ok;
};

std::vector<Case> cases() {
  std::vector<Case> v;
  v.push_back({"q_lora, half rows, eps 1e-5, scale 1/sqrt(d)", {}, true});
  DsKnobs b;
  b.q_lora = false;
  b.tied = true;
  b.layout = RopeLayout::Interleaved;
  b.eps = 1e-6;
  b.softmax_scale = 1.0 / std::sqrt(24.0);
  v.push_back({"full q, tied, interleaved, eps 1e-6, DeepSeek scale", b, true});
  DsKnobs c;
  c.kv_bias = true;
  c.tied = true;
  v.push_back({"latent and rope-key biases, tied (eps rescale with tied head)", c, false});
  DsKnobs d;
  d.freq_offset = 0;
  v.push_back({"explicit frequencies = head of 8", d, true});
  DsKnobs e;
  e.freq_offset = 1;
  v.push_back({"explicit frequencies with offset -> linear factor", e, false});
  DsKnobs f;
  f.scaling.type = RopeScaling::Type::Llama3;
  f.scaling.factor = 8;
  f.scaling.original_max_position = 64;
  v.push_back({"llama3 rope scaling", f, false});
  DsKnobs g;
  g.nope = 0;
  g.q_lora = false;
  v.push_back({"no NoPE part (padded to 1)", g, true});
  return v;
}

TEST(DeepseekLayout, RewritesKeepTheLogits) {
  for (const Case& cs : cases()) {
    SCOPED_TRACE(cs.name);
    const Model m = test::deepseek_like(cs.k);
    for (DeepseekFormat f : {DeepseekFormat::HfDeepseekV3, DeepseekFormat::GgufDeepseek2}) {
      if (f == DeepseekFormat::GgufDeepseek2 && !cs.gguf_ok) continue;
      SCOPED_TRACE(deepseek_format_name(f));
      std::vector<std::string> notes;
      const Model d = deepseek_layout(m, f, &notes);
      EXPECT_NO_THROW(check_deepseek_layout(d.config, f, "d"));
      EXPECT_EQ(d.config.rope_layout, RopeLayout::Interleaved);
      EXPECT_TRUE(d.config.mla->rope_inv_freq.empty());
      EXPECT_GE(d.config.mla->qk_nope_head_dim, 1);
      test::expect_same_logits(m, d);
    }
  }
}

TEST(DeepseekLayout, ReportsEachRewrite) {
  std::vector<std::string> notes;
  const Model d = deepseek_layout(test::deepseek_like(), DeepseekFormat::HfDeepseekV3, &notes);
  EXPECT_TRUE(has_note(notes, "softmax scale"));
  EXPECT_TRUE(has_note(notes, "rms_norm_eps"));
  EXPECT_DOUBLE_EQ(d.config.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(d.config.mla->softmax_scale, 1.0 / std::sqrt(24.0));

  notes.clear();
  const Model g = deepseek_layout(test::deepseek_like(), DeepseekFormat::GgufDeepseek2, &notes);
  EXPECT_FALSE(has_note(notes, "rms_norm_eps"));  // llama.cpp uses rms_norm_eps for every norm
  EXPECT_DOUBLE_EQ(g.config.rms_norm_eps, 1e-5);

  DsKnobs k;
  k.freq_offset = 1;
  notes.clear();
  const Model r = deepseek_layout(test::deepseek_like(k), DeepseekFormat::HfDeepseekV3, &notes);
  EXPECT_TRUE(has_note(notes, "linear scaling"));
  EXPECT_EQ(r.config.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_NEAR(r.config.rope_scaling.factor, std::pow(10000.0, 1.0 / 8), 1e-6);
  EXPECT_NEAR(r.config.rope_theta, 10000.0, 1e-3);

  DsKnobs z;
  z.nope = 0;
  notes.clear();
  const Model p = deepseek_layout(test::deepseek_like(z), DeepseekFormat::GgufDeepseek2, &notes);
  EXPECT_TRUE(has_note(notes, "padded to 1"));
  EXPECT_EQ(p.config.mla->qk_nope_head_dim, 1);
}

TEST(DeepseekLayout, HalfRopeRowsBecomeInterleaved) {
  DsKnobs k;
  k.eps = 1e-6;
  const Model m = test::deepseek_like(k);
  const Model d = deepseek_layout(m, DeepseekFormat::GgufDeepseek2);
  const TypedTensor expect = permute_rope_rows(m.weights.layers[0].mla.w_kr, 8, /*to_half=*/false);
  test::expect_identical(d.weights.layers[0].mla.w_kr, expect, "w_kr");
  test::expect_identical(permute_rope_rows(expect, 8, true), m.weights.layers[0].mla.w_kr, "w_kr back");
}

// A single rope head read through W_qr (as a repeat conversion of an MQA source has,
// with a latent norm added): W_qr is folded into the query, d_n 0 padded.
TEST(DeepseekLayout, FoldsSingleHeadRopeUpProjection) {
  for (bool q_lora : {false, true}) {
    SCOPED_TRACE(q_lora ? "q_lora" : "full q");
    DsKnobs k;
    k.nope = 0;
    k.q_lora = q_lora;
    Model base = test::deepseek_like(k);
    ModelConfig c = base.config;
    c.mla->q_rope_in_dim = 12;
    const Model m = random_mla_model(c, 21);
    ASSERT_FALSE(m.weights.layers[0].mla.wqr.empty());
    std::vector<std::string> notes;
    const Model d = deepseek_layout(m, DeepseekFormat::GgufDeepseek2, &notes);
    EXPECT_TRUE(has_note(notes, "W_qr"));
    EXPECT_EQ(d.config.mla->q_rope_in_dim, 0);
    EXPECT_TRUE(d.weights.layers[0].mla.wqr.empty());
    test::expect_same_logits(m, d);
  }
}

TEST(DeepseekLayout, RopeSpecFor) {
  ModelConfig c;
  c.rope_theta = 10000;
  // The model's own RoPE for a head of 8.
  auto s = rope_spec_for(rope_frequencies(10000, 8, {}), c, 8);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->scaling.type, RopeScaling::Type::None);
  EXPECT_DOUBLE_EQ(s->theta, 10000);
  // Every 4th frequency of a head of 32, from offset 2: theta 10000, linear factor.
  std::vector<double> f;
  for (int j = 0; j < 4; ++j) f.push_back(std::pow(10000.0, -2.0 * (4 * j + 2) / 32.0));
  s = rope_spec_for(f, c, 8);
  ASSERT_TRUE(s);
  EXPECT_NEAR(s->theta, 10000, 1e-6 * 10000);
  EXPECT_EQ(s->scaling.type, RopeScaling::Type::Linear);
  EXPECT_NEAR(s->scaling.factor, std::pow(10000.0, 4.0 / 32.0), 1e-9);
  // A partial-RoPE pick (frequencies 0, 1, 5, 7 of a head of 16): no standard head.
  f.clear();
  for (int i : {0, 1, 5, 7}) f.push_back(std::pow(10000.0, -2.0 * i / 16.0));
  EXPECT_FALSE(rope_spec_for(f, c, 8));
  // Llama 3 scaled frequencies of a head of 8: the model's own config.
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8;
  c.rope_scaling.original_max_position = 64;
  s = rope_spec_for(rope_frequencies(10000, 8, c.rope_scaling), c, 8);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->scaling.type, RopeScaling::Type::Llama3);
}

}  // namespace
}  // namespace mlar
