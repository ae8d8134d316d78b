// (a) The math: the repeat conversion, written as an MLA directory and read back, run
// through the scalar MLA reference, gives the scalar GQA reference's logits.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "common/test_data.h"
#include "convert/absorb.h"
#include "convert/repeat.h"
#include "convert_sources.h"
#include "io/load_model.h"
#include "io/mla_model.h"
#include "mla_reference.h"

namespace mlar {
namespace {

using Case = test::ConvertCase;
using test::all_cases;
using test::case_name;

class ReferenceEquivalence : public testing::TestWithParam<Case> {};

TEST_P(ReferenceEquivalence, ConvertedLogitsMatchTheSource) {
  const Model& src = test::convert_source(GetParam().source);
  Model mla = convert_repeat(src);
  if (GetParam().absorb) absorb(mla);
  const std::string dir = test::temp_dir("ref") + "/mla";
  std::filesystem::create_directory(dir);
  write_mla_model(mla, dir);
  const Model back = load_model(dir);
  ASSERT_TRUE(back.config.mla);
  EXPECT_EQ(back.config.mla->absorbed, GetParam().absorb);
  EXPECT_EQ(back.config.rope_layout, src.config.rope_layout);  // rows were never reordered

  const auto tokens = test::convert_tokens(src);
  const auto want = test::naive_forward(src, tokens);
  const auto got = test::mla_reference_forward(back, tokens);
  double scale = 0;
  const double diff = test::max_abs_diff(got, want, &scale);
  std::printf("%s%s: scalar MLA vs scalar GQA over %zu tokens: max |dlogit| %.3g (logit scale %.3g)\n",
              GetParam().source.c_str(), GetParam().absorb ? " (absorbed)" : "", tokens.size(), diff, scale);
  EXPECT_LE(diff, 1e-4);
  EXPECT_GT(scale, 1.0);  // the logits are not trivially small
}

INSTANTIATE_TEST_SUITE_P(Sources, ReferenceEquivalence, testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace mlar
