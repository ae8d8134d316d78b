// `convert --target` as a user runs it on stories260K: a target the model is too small
// for is refused before any work with the nearest setting, and the transformers target
// converts and exports in one command (no --latent-norm needed), the export reloading
// with the converted model's logits.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_data.h"
#include "extend/extend_cli_util.h"
#include "extend/extend_fixtures.h"
#include "io/load_model.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

std::string stories_args() {
  return test::quote(test::data_path("models/stories260K/stories260K.bin")) + " --tokenizer " +
         test::quote(test::data_path("models/stories260K/tok512.model"));
}

TEST(TargetCli, TooSmallForVllmIsRefusedWithTheNearestSetting) {
  const std::string dir = test::temp_dir("target-refuse");
  const auto r = test::run_extend_cli("convert " + stories_args() + " --rope-mode extend --target vllm --calib " +
                                      test::quote(test::data_path("text/tinystories-calib.txt")) + " --out " +
                                      test::quote(dir + "/mla"));
  EXPECT_EQ(r.status, 1);
  EXPECT_CONTAINS(r.err, "--target vllm");
  EXPECT_CONTAINS(r.err, "head size 8");
  EXPECT_CONTAINS(r.err, "nearest: --target transformers");
  EXPECT_FALSE(fs::exists(dir + "/mla"));
  const auto u = test::run_extend_cli("convert " + stories_args() + " --rope-mode extend --target tgi --calib x --out " +
                                      test::quote(dir + "/mla"));
  EXPECT_EQ(u.status, 1);
  EXPECT_CONTAINS(u.err, "available: transformers, vllm, sglang, llama.cpp");
  const auto n = test::run_extend_cli("convert " + stories_args() + " --rope-mode extend --target transformers " +
                                      "--latent-norm none --kv-budget 0.5 --calib " +
                                      test::quote(test::data_path("text/tinystories-calib.txt")) + " --out " +
                                      test::quote(dir + "/mla"));
  EXPECT_EQ(n.status, 1);
  EXPECT_CONTAINS(n.err, "--latent-norm none conflicts with --target transformers");
}

TEST(TargetCli, TransformersTargetConvertsAndExportsInOneCommand) {
  const std::string dir = test::temp_dir("target-export");
  const auto r = test::run_extend_cli(
      "convert " + stories_args() + " --rope-mode extend --target transformers --kv-budget 0.25 --qk-rope-dim 4 " +
      "--attn-key-balance 1 --calib-tokens 4096 --calib-len 128 --calib " +
      test::quote(test::data_path("text/tinystories-calib.txt")) + " --out " + test::quote(dir + "/mla") +
      " --format gguf --export-out " + test::quote(dir + "/m.gguf") + " -q");
  ASSERT_EQ(r.status, 0) << r.err;
  const Model mla = load_model(dir + "/mla");
  ASSERT_TRUE(mla.config.mla);
  EXPECT_TRUE(mla.config.mla->latent_norm);
  EXPECT_EQ(mla.config.mla->kv_lora_rank + mla.config.mla->qk_rope_head_dim, 16);  // 25% of 64
  EXPECT_TRUE(mla.config.mla->latent_linear);  // --latent-scale auto without --distill-steps
  // Training refuses the linear-regime latent, naming the option that avoids it.
  const auto ft = test::run_extend_cli("finetune " + test::quote(dir + "/mla") + " --text " +
                                       test::quote(test::data_path("text/tinystories-calib.txt")) +
                                       " --steps 1 --lr 1e-3 --mode e2e --out " + test::quote(dir + "/ft") + " -q");
  EXPECT_EQ(ft.status, 1);
  EXPECT_CONTAINS(ft.err, "--latent-scale natural");
  const Model gguf = load_model(dir + "/m.gguf");
  const auto ids = test::random_ids(40, mla.config.vocab_size, 5);
  const Tensor a = test::runtime_logits(mla, ids), b = test::runtime_logits(gguf, ids);
  EXPECT_LE(test::max_abs_diff(a, b), 1e-4 * std::max(1.0, test::max_abs(a)));
}

}  // namespace
}  // namespace mlar
