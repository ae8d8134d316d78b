// What the DeepSeek formats cannot express is refused with a message saying why and
// what to do instead (deepseek_export.h), for both formats.
#include <gtest/gtest.h>

#include "convert/absorb.h"
#include "export_models.h"
#include "io/deepseek_export.h"
#include "runtime/random_model.h"

namespace mlar {
namespace {

using test::DsKnobs;
using test::error_of;

const DeepseekFormat kBoth[] = {DeepseekFormat::HfDeepseekV3, DeepseekFormat::GgufDeepseek2};

std::string refusal(const Model& m, DeepseekFormat f) {
  return error_of([&] { deepseek_layout(m, f); });
}

TEST(ExportRefusals, GqaModel) {
  ModelConfig c = test::deepseek_like().config;
  c.mla.reset();
  const Model m = random_model(c, 3);
  for (auto f : kBoth) {
    const std::string e = refusal(m, f);
    EXPECT_HAS(e, "GQA model");
    EXPECT_HAS(e, "convert it first");
  }
}

TEST(ExportRefusals, StoredAbsorption) {
  Model m = test::deepseek_like();
  absorb(m);
  for (auto f : kBoth) {
    const std::string e = refusal(m, f);
    EXPECT_HAS(e, "stored absorbed");
    EXPECT_HAS(e, "without --absorb");
  }
}

TEST(ExportRefusals, SeveralRopeHeads) {
  ModelConfig c = test::deepseek_like().config;
  c.mla->num_rope_heads = 2;
  c.mla->rope_mode = RopeMode::Repeat;
  const Model m = random_mla_model(c, 5);
  for (auto f : kBoth) {
    const std::string e = refusal(m, f);
    EXPECT_HAS(e, "2 rope heads");
    EXPECT_HAS(e, "n_r = 1");
    EXPECT_HAS(e, "--rope-mode extend");
  }
}

TEST(ExportRefusals, PerLayerRanks) {
  ModelConfig c = test::deepseek_like().config;
  c.mla->layer_kv_lora_rank = {24, 16};
  const Model m = random_mla_model(c, 5);
  for (auto f : kBoth) EXPECT_HAS(refusal(m, f), "differs per layer (24, 16)");
}

TEST(ExportRefusals, NoLatentNorm) {
  DsKnobs k;
  k.latent_norm = false;
  const Model m = test::deepseek_like(k);
  for (auto f : kBoth) {
    const std::string e = refusal(m, f);
    EXPECT_HAS(e, "no latent RMSNorm");
    EXPECT_HAS(e, "kv_a_layernorm");
    EXPECT_HAS(e, "--latent-norm calibrated");
  }
}

TEST(ExportRefusals, QueryBias) {
  DsKnobs k;
  k.q_bias = true;
  const Model m = test::deepseek_like(k);
  for (auto f : kBoth) EXPECT_HAS(refusal(m, f), "query bias");
  // An all-zero one is dropped.
  Model z = m;
  for (auto& L : z.weights.layers) {
    ASSERT_FALSE(L.mla.bq.empty());
    std::fill(L.mla.bq.ptr(), L.mla.bq.ptr() + L.mla.bq.numel(), 0.0f);
  }
  EXPECT_NO_THROW(deepseek_layout(z, DeepseekFormat::GgufDeepseek2));
}

TEST(ExportRefusals, LatentBiasInGguf) {
  DsKnobs k;
  k.kv_bias = true;
  const Model m = test::deepseek_like(k);
  const std::string e = refusal(m, DeepseekFormat::GgufDeepseek2);
  EXPECT_HAS(e, "no bias tensors");
  EXPECT_HAS(e, "--format deepseek-v3");
  EXPECT_NO_THROW(deepseek_layout(m, DeepseekFormat::HfDeepseekV3));
}

TEST(ExportRefusals, NonStandardRopeFrequencies) {
  Model m = test::deepseek_like();
  for (int i : {0, 1, 5, 7}) m.config.mla->rope_inv_freq.push_back(std::pow(10000.0, -2.0 * i / 16.0));
  for (auto f : kBoth) {
    const std::string e = refusal(m, f);
    EXPECT_HAS(e, "rope frequencies");
    EXPECT_HAS(e, "not those of a standard RoPE head of 8");
  }
}

TEST(ExportRefusals, RopeScalingInGguf) {
  DsKnobs lin;
  lin.freq_offset = 1;  // a standard head with a linear factor
  DsKnobs l3;
  l3.scaling.type = RopeScaling::Type::Llama3;
  l3.scaling.factor = 8;
  l3.scaling.original_max_position = 64;
  for (const DsKnobs& k : {lin, l3}) {
    const Model m = test::deepseek_like(k);
    EXPECT_HAS(refusal(m, DeepseekFormat::GgufDeepseek2), "RoPE scaling");
    EXPECT_NO_THROW(deepseek_layout(m, DeepseekFormat::HfDeepseekV3));
  }
}

TEST(ExportRefusals, UnknownFormat) {
  const std::string e = error_of([] { parse_deepseek_format("safetensors"); });
  EXPECT_HAS(e, "deepseek-v3");
  EXPECT_HAS(e, "gguf");
}

}  // namespace
}  // namespace mlar
