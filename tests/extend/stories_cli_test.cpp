// `mla-retrofit convert --rope-mode extend` on stories260K, end to end: calibration,
// report JSON, the written model reloads and evaluates to the reported perplexity.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "extend/extend_cli_util.h"
#include "extend/extend_fixtures.h"
#include "io/mla_model.h"

namespace mlar {
namespace {

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(ExtendCli, Stories260kHalfBudget) {
  const std::string model = test::data_path("models/stories260K/stories260K.bin");
  const std::string tok = test::data_path("models/stories260K/tok512.model");
  const std::string calib = test::data_path("text/tinystories-calib.txt");
  const std::string dir = test::temp_dir("extend-stories");
  const std::string eval = dir + "/eval.txt", out = dir + "/mla", report = dir + "/report.json";
  {
    const std::string dev = read_file(test::data_path("text/tinystories-dev.txt"));
    std::ofstream(eval) << dev.substr(0, 12000);
  }
  const auto r = test::run_extend_cli(
      "convert " + test::quote(model) + " --tokenizer " + test::quote(tok) + " --out " + test::quote(out) +
      " --rope-mode extend --calib " + test::quote(calib) +
      " --calib-tokens 8192 --calib-len 128 --kv-budget 0.5 --qk-rope-dim 8 --attn-key-balance 0.3 --eval-text " +
      test::quote(eval) + " --ctx 128 --report " + test::quote(report));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_CONTAINS(r.err, "extend: stage source");
  EXPECT_CONTAINS(r.err, "extend: stage rope_separated");
  EXPECT_CONTAINS(r.err, "extend: stage low_rank");
  EXPECT_CONTAINS(r.out, "1280 -> 640 bytes per token");

  const nlohmann::json j = nlohmann::json::parse(read_file(report));
  EXPECT_EQ(j["kv_bytes_per_token_before"], 1280);
  EXPECT_EQ(j["kv_bytes_per_token_after"], 640);
  EXPECT_DOUBLE_EQ(j["compression_ratio"].get<double>(), 2.0);
  EXPECT_EQ(j["qk_rope_dim"], 8);
  EXPECT_EQ(j["layer_kv_lora_rank"], nlohmann::json({24, 24, 24, 24, 24}));
  EXPECT_EQ(j["calibration"]["passes"], 5);  // sequential: one per layer
  // source, rope_separated, low_rank, final (after the value refit, on by default)
  ASSERT_EQ(j["stages"].size(), 4u);
  EXPECT_EQ(j["stages"][3]["stage"], "final");
  const double src = j["stages"][0]["perplexity"], rope = j["stages"][1]["perplexity"],
               low = j["stages"][2]["perplexity"], fin = j["stages"][3]["perplexity"];
  EXPECT_LT(src, rope * 1.0001);
  EXPECT_LT(rope, low * 1.05);
  EXPECT_LT(low, 2 * src);  // half the cache, no training
  EXPECT_LT(fin, 2 * src);
  ASSERT_EQ(j["value_refit"].size(), 5u);
  for (const auto& l : j["value_refit"]) {
    EXPECT_EQ(l["tokens"], 8192);  // every calibration window (fewer than --value-refit-tokens)
    EXPECT_LE(l["output_error_after"].get<double>(), l["output_error_before"].get<double>());
  }

  // The written model reloads and evaluates to the reported perplexity.
  const Model m = read_mla_model(out);
  EXPECT_EQ(m.config.mla->rope_mode, RopeMode::Extend);
  EXPECT_EQ(m.config.mla->num_rope_heads, 1);
  const auto e = test::run_extend_cli("eval " + test::quote(out) + " --text " + test::quote(eval) +
                                      " --ctx 128 --json -q");
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_NEAR(nlohmann::json::parse(e.out)["perplexity"].get<double>(), fin, 1e-3 * fin);
}

}  // namespace
}  // namespace mlar
