// Generation on stories260K (greedy golden text, seeded sampling) and stop rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/generate.h"
#include "runtime/random_model.h"
#include "test_models.h"

namespace mlar {
namespace {

std::vector<int32_t> story_prompt(const std::string& text) {
  std::vector<int32_t> ids{test::stories260k().config.bos_token_id};
  for (int32_t t : test::sp_encode(text)) ids.push_back(t);
  return ids;
}

std::string decode(const std::vector<int32_t>& ids) {
  std::string out;
  const std::vector<int> v(ids.begin(), ids.end());
  EXPECT_TRUE(test::stories_sp().Decode(v, &out).ok());
  return out;
}

TEST(Generate, Stories260KGreedyGolden) {
  const Model& m = test::stories260k();
  auto ids = story_prompt("Once upon a time");
  const size_t prompt_len = ids.size();
  GenerateOptions o;
  o.max_new_tokens = 40;
  const GenerateStats st = generate(m, ids, o, [&](int32_t t) {
    ids.push_back(t);
    return true;
  });
  const std::string text = decode(ids);
  EXPECT_EQ(st.prompt_tokens, static_cast<int64_t>(prompt_len));
  EXPECT_EQ(st.generated_tokens, 40);
  EXPECT_EQ(st.stop, StopReason::MaxTokens);
  EXPECT_GT(st.prefill_tok_s, 0);
  EXPECT_GT(st.decode_tok_s, 0);
  const std::string golden = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
  EXPECT_EQ(text.substr(0, golden.size()), golden) << text;
  std::printf("greedy: %s\n", text.c_str());
}

TEST(Generate, SeededSamplingReproduces) {
  const Model& m = test::stories260k();
  const auto prompt = story_prompt("One day");
  auto run = [&](uint64_t seed) {
    GenerateOptions o;
    o.max_new_tokens = 30;
    o.stop_at_eos = false;
    o.sampling = {.temperature = 0.9f, .top_p = 0.9f, .seed = seed};
    std::vector<int32_t> out;
    generate(m, prompt, o, [&](int32_t t) {
      out.push_back(t);
      return true;
    });
    return out;
  };
  const auto a = run(17), b = run(17), c = run(18);
  EXPECT_EQ(a.size(), 30u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Generate, StopsAtEosCallbackAndContext) {
  ModelConfig c = test::small_config();
  c.max_position_embeddings = 16;
  const Model m = random_model(c, 3);
  const std::vector<int32_t> prompt{1, 10, 11, 12};
  {
    // Context: 4 prompt tokens + at most 12 generated in 16 positions.
    GenerateOptions o;
    o.max_new_tokens = 100;
    o.stop_at_eos = false;
    Session s(m);
    const auto st = generate(s, prompt, o);
    EXPECT_EQ(st.stop, StopReason::ContextFull);
    EXPECT_EQ(st.generated_tokens, 12);
    EXPECT_EQ(s.n_past(), 15);  // the last generated token is never fed
  }
  {
    GenerateOptions o;
    o.max_new_tokens = 100;
    o.stop_at_eos = false;
    int seen = 0;
    const auto st = generate(m, prompt, o, [&](int32_t) { return ++seen < 3; });
    EXPECT_EQ(st.stop, StopReason::Callback);
    EXPECT_EQ(st.generated_tokens, 3);
  }
  {
    GenerateOptions o;
    o.max_new_tokens = 0;
    EXPECT_EQ(generate(m, prompt, o).generated_tokens, 0);
  }
  {
    // EOS set to the first greedy choice: nothing is emitted.
    Session probe(m);
    const Tensor& l = probe.prefill(prompt);
    Model m2 = random_model(c, 3);
    m2.config.eos_token_id = static_cast<int32_t>(std::max_element(l.data.begin(), l.data.end()) - l.data.begin());
    GenerateOptions o;
    const auto st = generate(m2, prompt, o);
    EXPECT_EQ(st.stop, StopReason::Eos);
    EXPECT_EQ(st.generated_tokens, 0);
  }
}

}  // namespace
}  // namespace mlar
