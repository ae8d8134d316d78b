// (b) The runtime: Session over the converted (and reloaded) MLA model gives the
// source's logits in prefill and decode, the same perplexity and the same greedy text.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "common/test_data.h"
#include "convert/absorb.h"
#include "convert/repeat.h"
#include "convert_sources.h"
#include "io/load_model.h"
#include "io/mla_model.h"
#include "runtime/generate.h"
#include "runtime/perplexity.h"
#include "runtime/session.h"

namespace mlar {
namespace {

using Case = test::ConvertCase;
using test::all_cases;
using test::case_name;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape, b.shape);
  double d = 0;
  for (int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i)
    d = std::max(d, double(std::abs(a.data[size_t(i)] - b.data[size_t(i)])));
  return d;
}

// Ids to score: the dev text for models with a tokenizer, seeded ids otherwise.
std::vector<int32_t> eval_ids(const Model& m) {
  if (m.tokenizer) {
    auto ids = m.tokenizer->encode(read_utf8_file(test::dev_text_path()).substr(0, 6000));
    ids.resize(std::min<size_t>(ids.size(), 400));
    return ids;
  }
  std::vector<int32_t> ids(300);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(3 + (i * 7919 + i * i * 31) % (m.config.vocab_size - 3));
  return ids;
}

std::vector<int32_t> greedy(const Model& m, const std::vector<int32_t>& prompt, int64_t n) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  std::vector<int32_t> out;
  generate(m, prompt, o, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  return out;
}

class SessionEquivalence : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    src_ = &test::convert_source(GetParam().source);
    Model mla = convert_repeat(*src_);
    if (GetParam().absorb) absorb(mla);
    const std::string dir = test::temp_dir("session") + "/mla";
    std::filesystem::create_directory(dir);
    write_mla_model(mla, dir);
    mla_ = load_model(dir);
  }
  const Model* src_ = nullptr;
  Model mla_;
};

TEST_P(SessionEquivalence, PrefillAndDecodeLogitsMatch) {
  const auto tokens = test::convert_tokens(*src_);
  for (MlaEval eval : {MlaEval::Auto, MlaEval::Naive, MlaEval::Absorbed}) {
    SCOPED_TRACE(mla_eval_name(eval));
    SessionOptions so;
    so.mla_eval = eval;
    Session a(*src_), b(mla_, so);
    const Tensor la = a.forward(tokens, Logits::All);  // [n, V]
    const Tensor lb = b.forward(tokens, Logits::All);  // [n, V]
    const double prefill = max_abs_diff(la, lb);
    EXPECT_LE(prefill, 1e-4);

    // Half prefill, then one token at a time.
    const size_t half = tokens.size() / 2;
    a.reset();
    b.reset();
    a.prefill(std::span<const int32_t>(tokens.data(), half));
    b.prefill(std::span<const int32_t>(tokens.data(), half));
    double decode = 0;
    for (size_t i = half; i < tokens.size(); ++i)
      decode = std::max(decode, max_abs_diff(a.decode(tokens[i]), b.decode(tokens[i])));
    EXPECT_LE(decode, 1e-4);
    std::printf("%s%s, %s evaluation: Session max |dlogit| prefill %.3g, decode %.3g\n", GetParam().source.c_str(),
                GetParam().absorb ? " (absorbed)" : "", mla_eval_name(eval), prefill, decode);
  }
}

TEST_P(SessionEquivalence, PerplexityIsTheSame) {
  const auto ids = eval_ids(*src_);
  PerplexityOptions o;
  o.ctx = 64;
  const PerplexityResult ra = perplexity(*src_, ids, o), rb = perplexity(mla_, ids, o);
  EXPECT_EQ(ra.tokens, rb.tokens);
  EXPECT_EQ(fmt::format("{:.4g}", ra.ppl), fmt::format("{:.4g}", rb.ppl));
  EXPECT_NEAR(rb.ppl, ra.ppl, 1e-5 * ra.ppl);
  std::printf("%s%s: perplexity GQA %.6f, MLA %.6f over %lld tokens\n", GetParam().source.c_str(),
              GetParam().absorb ? " (absorbed)" : "", ra.ppl, rb.ppl, static_cast<long long>(ra.tokens));
}

TEST_P(SessionEquivalence, GreedyTextIsIdentical) {
  std::vector<int32_t> prompt{src_->config.bos_token_id};
  if (src_->tokenizer) {
    const auto p = src_->tokenizer->encode("Once upon a time");
    prompt.insert(prompt.end(), p.begin(), p.end());
  } else {
    prompt.insert(prompt.end(), {5, 17, 42});
  }
  const auto ga = greedy(*src_, prompt, 40), gb = greedy(mla_, prompt, 40);
  EXPECT_EQ(ga, gb);
  EXPECT_FALSE(ga.empty());
  if (src_->tokenizer) {
    EXPECT_EQ(src_->tokenizer->decode(ga), mla_.tokenizer->decode(gb));
  }
}

INSTANTIATE_TEST_SUITE_P(Sources, SessionEquivalence, testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace mlar
