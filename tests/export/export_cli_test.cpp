// `mla-retrofit export` as a user runs it: an MLA directory in, a DeepSeek-V3
// directory or a GGUF file out, reloadable by every command; refusals exit 1 with
// the reason and leave nothing behind.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli/cli_runner.h"
#include "export_models.h"
#include "io/mla_model.h"
#include "tokenizer/load.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using test::DsKnobs;
using test::run_cli;
using test::sh_quote;

std::string write_mla_dir(const Model& m, const std::string& tag) {
  const std::string dir = test::temp_dir(tag) + "/mla";
  fs::create_directory(dir);
  write_mla_model(m, dir);
  return dir;
}

TEST(ExportCli, ExportsBothFormatsAndTheyReload) {
  DsKnobs k;
  k.vocab = 512;
  Model m = test::deepseek_like(k);
  m.tokenizer = load_tokenizer(test::data_path("models/stories260K/tok512.model"));
  const std::string mla = write_mla_dir(m, "cli-src");
  const Model src = load_model(mla);
  const std::string out = test::temp_dir("cli-out");
  for (const char* fmt : {"deepseek-v3", "gguf"}) {
    SCOPED_TRACE(fmt);
    const std::string dst = out + (std::string(fmt) == "gguf" ? "/m.gguf" : "/ds");
    auto r = run_cli("export " + sh_quote(mla) + " --format " + fmt + " --out " + sh_quote(dst));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("wrote " + dst), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("note: softmax scale"), std::string::npos) << r.out;
    const Model back = load_model(dst);
    test::expect_same_logits(src, back);
    ASSERT_TRUE(back.tokenizer);
    EXPECT_EQ(back.tokenizer->encode("Lily and Ben went to the park."), m.tokenizer->encode("Lily and Ben went to the park."));
    // The output exists now: refused without --force, replaced with it.
    r = run_cli("export " + sh_quote(mla) + " --format " + fmt + " --out " + sh_quote(dst));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("exists"), std::string::npos) << r.err;
    r = run_cli("export " + sh_quote(mla) + " --format " + fmt + " --out " + sh_quote(dst) + " --force --dtype BF16");
    EXPECT_EQ(r.status, 0) << r.err;
    // Other commands read the export.
    r = run_cli("logits " + sh_quote(dst) + " --ids 1,5,9,200 --out " + sh_quote(out + "/l-" + fmt + ".npy"));
    EXPECT_EQ(r.status, 0) << r.err;
  }
}

TEST(ExportCli, RefusalsExitOneAndLeaveNothing) {
  DsKnobs k;
  k.latent_norm = false;
  const std::string mla = write_mla_dir(test::deepseek_like(k), "cli-nonorm");
  const std::string out = test::temp_dir("cli-refused");
  for (const char* fmt : {"deepseek-v3", "gguf"}) {
    const std::string dst = out + "/" + fmt;
    auto r = run_cli("export " + sh_quote(mla) + " --format " + fmt + " --out " + sh_quote(dst));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("--latent-norm calibrated"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dst));
  }
  EXPECT_TRUE(fs::is_empty(out));
  // A GQA model: convert first.
  auto r = run_cli("export " + sh_quote(test::data_path("models/stories260K/stories260K.bin")) +
                   " --format gguf --out " + sh_quote(out + "/x.gguf"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("convert it first"), std::string::npos) << r.err;
  r = run_cli("export " + sh_quote(mla) + " --format onnx --out " + sh_quote(out + "/y"));
  EXPECT_NE(r.status, 0);
}

// convert --format/--export-out: the MLA directory and the export in one run.
TEST(ExportCli, ConvertExportsTheConvertedModel) {
  const std::string st = test::data_path("models/stories260K");
  const std::string out = test::temp_dir("cli-convert");
  const std::string common = " " + sh_quote(st + "/stories260K.bin") + " --tokenizer " + sh_quote(st + "/tok512.model");
  auto r = run_cli("convert" + common + " --rope-mode extend --calib " +
                   sh_quote(test::data_path("text/tinystories-dev.txt")) +
                   " --calib-tokens 8000 --latent-norm calibrated --kv-lora-rank 16 --qk-rope-dim 4 --rope-strategy high -q --out " +
                   sh_quote(out + "/mla") + " --format gguf --export-out " + sh_quote(out + "/m.gguf"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("exported " + out + "/m.gguf"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rope_theta 100"), std::string::npos) << r.out;  // high: frequencies 0, 1 of a head of 8
  const Model mla = load_model(out + "/mla"), gguf = load_model(out + "/m.gguf");
  test::expect_same_logits(mla, gguf, 1e-4);
  ASSERT_TRUE(gguf.tokenizer);
  EXPECT_EQ(gguf.tokenizer->encode("The cat sat on the mat."), mla.tokenizer->encode("The cat sat on the mat."));

  // The repeat mode cannot be exported: refused before converting.
  r = run_cli("convert" + common + " --rope-mode repeat --out " + sh_quote(out + "/rep") + " --format deepseek-v3" +
              " --export-out " + sh_quote(out + "/rep-ds"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--rope-mode extend"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out + "/rep"));
}

}  // namespace
}  // namespace mlar
