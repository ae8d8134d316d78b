// convert --target (convert/target.h): the shapes each serving target fixes, the KV
// fraction that follows on published model shapes, refusals that name the nearest
// setting, and a target conversion that the DeepSeek exporters take as it is.
#include <gtest/gtest.h>

#include "convert/target.h"
#include "extend_fixtures.h"
#include "io/deepseek_export.h"

namespace mlar {
namespace {

using test::error_message;

ModelConfig published(int64_t n_h, int64_t n_kv, int64_t d) {
  ModelConfig c;
  c.hidden_size = n_h * d;
  c.num_heads = n_h;
  c.num_kv_heads = n_kv;
  c.head_dim = d;
  c.num_layers = 2;
  c.vocab_size = 64;
  c.intermediate_size = 64;
  return c;
}

TEST(Target, PublishedShapesGiveTheDocumentedFractions) {
  struct Case {
    const char* name;
    ModelConfig c;
    double vllm;  // kv fraction at 512 + 64, 0 = does not fit
  };
  const Case cases[] = {
      {"Llama-3-8B", published(32, 8, 128), 576.0 / 2048},
      {"Mistral-7B", published(32, 8, 128), 576.0 / 2048},
      {"Qwen2.5-7B", published(28, 4, 128), 576.0 / 1024},
      {"Llama-3.2-1B", published(32, 8, 64), 576.0 / 1024},
      {"Qwen2.5-0.5B", published(14, 2, 64), 0},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    for (ServeTarget t : {ServeTarget::Vllm, ServeTarget::Sglang, ServeTarget::LlamaCpp}) {
      const TargetFit f = fit_target(k.c, t);
      EXPECT_EQ(f.fits, k.vllm > 0) << f.why;
      if (!f.fits) {
        EXPECT_NE(f.why.find("256 values"), std::string::npos) << f.why;
        EXPECT_NE(f.why.find("--target transformers"), std::string::npos) << f.why;
        continue;
      }
      EXPECT_EQ(f.shape.kv_lora_rank, 512);
      EXPECT_EQ(f.shape.qk_rope_dim, 64);
      EXPECT_DOUBLE_EQ(f.kv_fraction, k.vllm);
    }
    const TargetFit tf = fit_target(k.c, ServeTarget::Transformers);
    EXPECT_TRUE(tf.fits);
    EXPECT_EQ(tf.shape.kv_lora_rank, 0);  // the budget decides
  }
}

TEST(Target, SmallerShapeWhenOnlyItFitsAndRequestedShapesAreChecked) {
  // 2 n_kv d = 384: 576 does not fit, 320 does (vLLM / SGLang), llama.cpp has no such shape.
  const ModelConfig c = published(6, 3, 64);
  TargetFit f = fit_target(c, ServeTarget::Vllm);
  ASSERT_TRUE(f.fits) << f.why;
  EXPECT_EQ(f.shape.kv_lora_rank, 256);
  EXPECT_DOUBLE_EQ(f.kv_fraction, 320.0 / 384);
  f = fit_target(c, ServeTarget::LlamaCpp);
  EXPECT_FALSE(f.fits);
  EXPECT_NE(f.why.find("--target vllm"), std::string::npos) << f.why;  // the nearest setting that works
  // A requested shape outside the target's list is refused, naming the list.
  f = fit_target(published(32, 8, 128), ServeTarget::Vllm, {384, 64});
  EXPECT_FALSE(f.fits);
  EXPECT_NE(f.why.find("r 512 + d_r 64 = 576"), std::string::npos) << f.why;
  f = fit_target(published(32, 8, 128), ServeTarget::Vllm, {256, 0});
  ASSERT_TRUE(f.fits);
  EXPECT_EQ(f.shape.qk_rope_dim, 64);
}

TEST(Target, NopeHeadSizeAndRopeScalingRefusals) {
  ModelConfig c = published(32, 8, 96);  // head size 96: not a FlashInfer NoPE size
  TargetFit f = fit_target(c, ServeTarget::Vllm);
  EXPECT_FALSE(f.fits);
  EXPECT_NE(f.why.find("head size 96"), std::string::npos) << f.why;
  EXPECT_TRUE(fit_target(c, ServeTarget::LlamaCpp).fits);
  c = published(32, 8, 128);
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  f = fit_target(c, ServeTarget::LlamaCpp);
  EXPECT_FALSE(f.fits);
  EXPECT_NE(f.why.find("llama3 RoPE scaling"), std::string::npos) << f.why;
  EXPECT_TRUE(fit_target(c, ServeTarget::Vllm).fits);
}

TEST(Target, ApplySetsTheShapeAndNormAndRefusesConflicts) {
  const ModelConfig c = published(32, 8, 128);
  ExtendOptions o;
  apply_target(c, ServeTarget::Vllm, o);
  EXPECT_EQ(o.kv_lora_rank, 512);
  EXPECT_EQ(o.qk_rope_dim, 64);
  EXPECT_EQ(o.latent_norm, LatentNorm::Calibrated);
  ExtendOptions b;
  b.kv_budget = 0.25;
  EXPECT_NE(error_message([&] { apply_target(c, ServeTarget::Vllm, b); }).find("drop --kv-budget"), std::string::npos);
  apply_target(c, ServeTarget::Transformers, b);  // a free-shape target keeps the budget
  EXPECT_EQ(b.kv_budget, 0.25);
  EXPECT_EQ(b.kv_lora_rank, 0);
  EXPECT_EQ(b.latent_norm, LatentNorm::Calibrated);
  ExtendOptions e;
  e.rank_alloc = RankAlloc::Energy;
  EXPECT_NE(error_message([&] { apply_target(c, ServeTarget::Transformers, e); }).find("--rank-alloc"),
            std::string::npos);
  EXPECT_NE(error_message([&] { apply_target(published(14, 2, 64), ServeTarget::Sglang, o); })
                .find("nearest: --target transformers"),
            std::string::npos);
  EXPECT_FALSE(serve_target_from_name("tgi"));
  EXPECT_EQ(*serve_target_from_name("llama.cpp"), ServeTarget::LlamaCpp);
}

TEST(Target, VllmConversionIsExportedAsItIs) {
  // 2 n_kv d = 640 >= 576: the smallest shape vLLM's 512 + 64 fits.
  ModelConfig c = test::extend_config(5);
  c.num_heads = 5;
  c.head_dim = 64;
  c.hidden_size = 96;
  c.num_layers = 1;
  c.max_position_embeddings = 64;
  const Model gqa = random_model(c, 7);
  ExtendOptions o;
  o.calib_len = 32;
  o.progress = false;
  o.freqfold = 1;
  o.attn_key_balance = 1;
  apply_target(c, ServeTarget::Vllm, o);
  Model mla = convert_extend(gqa, o, test::random_ids(32 * 40, c.vocab_size, 3));
  ASSERT_TRUE(mla.config.mla);
  EXPECT_EQ(mla.config.mla->kv_lora_rank, 512);
  EXPECT_EQ(mla.config.mla->qk_rope_head_dim, 64);
  EXPECT_TRUE(mla.config.mla->latent_norm);
  const Tensor before = test::runtime_logits(mla, test::random_ids(20, c.vocab_size, 9));
  for (DeepseekFormat f : {DeepseekFormat::HfDeepseekV3, DeepseekFormat::GgufDeepseek2}) {
    SCOPED_TRACE(deepseek_format_name(f));
    std::vector<std::string> notes;
    const Model ds = deepseek_layout(mla, f, &notes);  // throws if the export would refuse it
    const Tensor after = test::runtime_logits(ds, test::random_ids(20, c.vocab_size, 9));
    EXPECT_LE(test::max_abs_diff(before, after), 1e-4 * std::max(1.0, test::max_abs(before)));
  }
}

}  // namespace
}  // namespace mlar
