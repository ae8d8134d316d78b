// The exact repeat retrofit (MLA.md §3), built by hand in mla_test_models.h, runs in
// the MLA runtime with the GQA model's logits: on stories260K and on a random
// Qwen2-like model with q/k/v biases, in prefill and in decode, for every evaluation.
#include <gtest/gtest.h>

#include "common/test_data.h"
#include "io/load_model.h"
#include "mla_test_models.h"
#include "runtime/random_model.h"
#include "runtime/session.h"
#include "runtime/test_models.h"

namespace mlar {
namespace {

void expect_same_logits(const Model& gqa, const std::vector<int32_t>& ids, const std::string& what) {
  const Model mla = test::repeat_by_hand(gqa);
  Session g(gqa);
  const Tensor ref = g.forward(ids, Logits::All);  // [n, V]
  const size_t half = ids.size() / 2;
  g.reset();
  g.prefill(std::span<const int32_t>(ids.data(), half));
  std::vector<Tensor> ref_decode;
  for (size_t i = half; i < ids.size(); ++i) ref_decode.push_back(g.decode(ids[i]));
  for (MlaEval e : {MlaEval::Auto, MlaEval::Naive, MlaEval::Absorbed}) {
    Session s(mla, {.mla_eval = e});
    const double prefill = test::max_rel_diff(s.forward(ids, Logits::All), ref);
    EXPECT_LE(prefill, 1e-5) << what << " " << mla_eval_name(e);
    s.reset();
    s.prefill(std::span<const int32_t>(ids.data(), half));
    double decode = 0;
    for (size_t i = half; i < ids.size(); ++i)
      decode = std::max(decode, test::max_rel_diff(s.decode(ids[i]), ref_decode[i - half]));
    EXPECT_LE(decode, 1e-5) << what << " " << mla_eval_name(e);
    std::printf("%s, %s: max relative logit difference to GQA: prefill %.2g, decode %.2g\n", what.c_str(),
                mla_eval_name(e), prefill, decode);
  }
  EXPECT_EQ(Session(mla).cache().bytes_per_token(), Session(gqa).cache().bytes_per_token());
}

TEST(MlaRepeat, Stories260kKeepsItsLogits) {
  const Model m = load_model(test::data_path("models/stories260K/stories260K.bin"),
                             LoadOptions{test::data_path("models/stories260K/tok512.model")});
  ASSERT_TRUE(m.tokenizer);
  std::vector<int32_t> ids{m.config.bos_token_id};
  const auto body = m.tokenizer->encode("Once upon a time, there was a little girl named Lily. She loved to play.");
  ids.insert(ids.end(), body.begin(), body.end());
  ASSERT_GE(ids.size(), 16u);
  expect_same_logits(m, ids, "stories260K");
}

TEST(MlaRepeat, RandomQwen2WithBiasesKeepsItsLogits) {
  ModelConfig c = test::small_config();
  c.arch = "qwen2";
  c.hidden_size = 64;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.attention_bias = true;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  const Model m = random_model(c, 77);
  expect_same_logits(m, test::mla_random_ids(40, c.vocab_size, 4), "random qwen2");
}

}  // namespace
}  // namespace mlar
