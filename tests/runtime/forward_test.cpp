// Session logits against the independent naive forward (naive_forward.h), prefill
// against token-by-token decode, and RoPE layout invariance.
#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "model/weights.h"
#include "naive_forward.h"
#include "runtime/gqa_attention.h"
#include "runtime/random_model.h"
#include "runtime/rope_table.h"
#include "runtime/session.h"
#include "test_models.h"
#include "util/error.h"

namespace mlar {
namespace {

using test::max_rel_diff;
using test::naive_forward;

struct Variant {
  const char* name;
  RopeLayout layout;
  bool bias;
  bool tied;
  RopeScaling::Type scaling;
  int64_t heads, kv_heads, head_dim;
  bool qk_norm;  // Qwen3's per-head q/k RMSNorms
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

ModelConfig variant_config(const Variant& v) {
  ModelConfig c = test::small_config(v.layout);
  c.attention_bias = v.bias;
  c.tie_word_embeddings = v.tied;
  c.num_heads = v.heads;
  c.num_kv_heads = v.kv_heads;
  c.head_dim = v.head_dim;
  c.qk_norm = v.qk_norm;
  c.rope_scaling.type = v.scaling;
  if (v.scaling == RopeScaling::Type::Linear) c.rope_scaling.factor = 2.0;
  if (v.scaling == RopeScaling::Type::Llama3) {
    // Wavelengths 6.3, 63, 628, 6283 with thresholds 256 and 1024: one of each band.
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position = 1024;
  }
  return c;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return ids;
}

class RandomModel : public ::testing::TestWithParam<Variant> {};

TEST_P(RandomModel, SessionMatchesNaiveForward) {
  const Model m = random_model(variant_config(GetParam()), 42);
  const auto ids = random_ids(24, m.config.vocab_size, 7);
  Session s(m);
  const Tensor& logits = s.forward(ids, Logits::All);
  ASSERT_EQ(logits.shape, (Shape{24, m.config.vocab_size}));
  EXPECT_LE(max_rel_diff(logits, naive_forward(m, ids)), 1e-4);
}

TEST_P(RandomModel, PrefillMatchesTokenByTokenDecode) {
  const Model m = random_model(variant_config(GetParam()), 43);
  const auto ids = random_ids(20, m.config.vocab_size, 8);
  Session all(m);
  const Tensor ref = all.forward(ids, Logits::All);
  // One token at a time.
  Session one(m);
  Tensor step({20, m.config.vocab_size});
  for (size_t i = 0; i < ids.size(); ++i) {
    const Tensor& l = one.decode(ids[i]);
    std::copy_n(l.ptr(), l.numel(), step.row(static_cast<int64_t>(i)));
  }
  EXPECT_LE(max_rel_diff(step, ref), 1e-5);
  // Uneven chunks: 1, 5, 3, 11.
  Session chunked(m);
  Tensor parts({20, m.config.vocab_size});
  int64_t at = 0;
  for (int64_t len : {1, 5, 3, 11}) {
    const Tensor& l = chunked.forward(std::span<const int32_t>(ids.data() + at, static_cast<size_t>(len)), Logits::All);
    std::copy_n(l.ptr(), l.numel(), parts.row(at));
    at += len;
  }
  EXPECT_EQ(chunked.n_past(), 20);
  EXPECT_LE(max_rel_diff(parts, ref), 1e-5);
  // Logits::Last is the last row of Logits::All.
  Session last(m);
  const Tensor& l = last.prefill(ids);
  ASSERT_EQ(l.shape, (Shape{1, m.config.vocab_size}));
  Tensor last_row({1, m.config.vocab_size});
  std::copy_n(ref.row(19), m.config.vocab_size, last_row.ptr());
  EXPECT_LE(max_rel_diff(l, last_row), 1e-6);
}

TEST_P(RandomModel, HalfAndInterleavedLayoutsAgree) {
  const Model a = random_model(variant_config(GetParam()), 44);
  Model b = random_model(variant_config(GetParam()), 44);
  const RopeLayout other = a.config.rope_layout == RopeLayout::Half ? RopeLayout::Interleaved : RopeLayout::Half;
  convert_rope_layout(b.config, b.weights, other);
  const auto ids = random_ids(16, a.config.vocab_size, 9);
  Session sa(a), sb(b);
  const Tensor la = sa.forward(ids, Logits::All);
  EXPECT_LE(max_rel_diff(sb.forward(ids, Logits::All), la), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, RandomModel,
    ::testing::Values(Variant{"half", RopeLayout::Half, false, false, RopeScaling::Type::None, 6, 2, 8, false},
                      Variant{"interleaved", RopeLayout::Interleaved, false, false, RopeScaling::Type::None, 6, 2, 8, false},
                      Variant{"qwen2_bias_tied", RopeLayout::Half, true, true, RopeScaling::Type::None, 6, 2, 8, false},
                      Variant{"interleaved_bias", RopeLayout::Interleaved, true, false, RopeScaling::Type::None, 6, 2, 8, false},
                      Variant{"linear", RopeLayout::Half, false, true, RopeScaling::Type::Linear, 6, 2, 8, false},
                      Variant{"llama3", RopeLayout::Half, false, false, RopeScaling::Type::Llama3, 6, 2, 8, false},
                      Variant{"llama3_interleaved", RopeLayout::Interleaved, true, true, RopeScaling::Type::Llama3, 6,
                              2, 8, false},
                      Variant{"mqa_wide_heads", RopeLayout::Half, false, false, RopeScaling::Type::None, 4, 1, 16, false},
                      Variant{"mha", RopeLayout::Interleaved, true, false, RopeScaling::Type::None, 3, 3, 12, false},
                      Variant{"qwen3_qk_norm", RopeLayout::Half, false, true, RopeScaling::Type::None, 4, 2, 16, true},
                      Variant{"qk_norm_interleaved_bias", RopeLayout::Interleaved, true, false,
                              RopeScaling::Type::None, 6, 2, 8, true}),
    [](const ::testing::TestParamInfo<Variant>& i) { return std::string(i.param.name); });

TEST(Stories260K, SessionMatchesNaiveForward) {
  const Model& m = test::stories260k();
  std::vector<int32_t> ids{m.config.bos_token_id};
  for (int32_t t : test::sp_encode("Once upon a time, there was a little dog named Max. He liked to run and jump."))
    ids.push_back(t);
  ASSERT_GT(ids.size(), 20u);
  Session s(m);
  EXPECT_LE(max_rel_diff(s.forward(ids, Logits::All), naive_forward(m, ids)), 1e-4);
}

TEST(Stories260K, PrefillMatchesDecode) {
  const Model& m = test::stories260k();
  std::vector<int32_t> ids{m.config.bos_token_id};
  for (int32_t t : test::sp_encode("The sun was shining and the birds were singing in the tall green trees."))
    ids.push_back(t);
  Session all(m), one(m);
  const Tensor ref = all.forward(ids, Logits::All);
  Tensor step(ref.shape);
  for (size_t i = 0; i < ids.size(); ++i) {
    const Tensor& l = one.decode(ids[i]);
    std::copy_n(l.ptr(), l.numel(), step.row(static_cast<int64_t>(i)));
  }
  EXPECT_LE(max_rel_diff(step, ref), 1e-5);
}

TEST(Stories260K, HalfLayoutCopyGivesSameLogits) {
  const Model& m = test::stories260k();
  ASSERT_EQ(m.config.rope_layout, RopeLayout::Interleaved);
  Model half;
  half.config = m.config;
  half.weights = m.weights;
  half.source = m.source + " (half)";
  convert_rope_layout(half.config, half.weights, RopeLayout::Half);
  ASSERT_EQ(half.config.rope_layout, RopeLayout::Half);
  std::vector<int32_t> ids{m.config.bos_token_id};
  for (int32_t t : test::sp_encode("Lily and Ben went to the park to play with a big red ball.")) ids.push_back(t);
  Session a(m), b(half);
  const Tensor la = a.forward(ids, Logits::All);
  EXPECT_LE(max_rel_diff(b.forward(ids, Logits::All), la), 1e-5);
}

// The decoder loop does not care which Attention a layer has: a wrapper that counts
// calls and forwards to GQA gives the same logits (the shape of an MLA layer plug-in).
class CountingAttention final : public Attention {
 public:
  CountingAttention(std::unique_ptr<Attention> inner, int* calls) : inner_(std::move(inner)), calls_(calls) {}
  std::string kind() const override { return "counting-" + inner_->kind(); }
  std::unique_ptr<LayerCache> make_cache(DType dtype) const override { return inner_->make_cache(dtype); }
  void forward(const float* x, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws, float* out) const override {
    ++*calls_;
    inner_->forward(x, n, pos0, cache, ws, out);
  }

 private:
  std::unique_ptr<Attention> inner_;
  int* calls_;
};

TEST(Decoder, AcceptsCustomAttentionLayers) {
  const Model m = random_model(test::small_config(), 5);
  int calls = 0;
  std::vector<std::unique_ptr<Attention>> layers;
  for (const auto& L : m.weights.layers)
    layers.push_back(std::make_unique<CountingAttention>(
        std::make_unique<GqaAttention>(m.config, L, rope_inv_freq(m.config)), &calls));
  auto dec = std::make_shared<const Decoder>(m, std::move(layers));
  EXPECT_EQ(dec->attention(0).kind(), "counting-gqa");
  const auto ids = random_ids(10, m.config.vocab_size, 3);
  Session custom(dec), plain(m);
  const Tensor ref = plain.forward(ids, Logits::All);
  EXPECT_EQ(max_rel_diff(custom.forward(ids, Logits::All), ref), 0.0);
  EXPECT_EQ(calls, 2);
}

TEST(Session, RejectsBadIdsAndContextOverflowWithoutChangingState) {
  const Model m = random_model(test::small_config(), 6);
  Session s(m, SessionOptions{.max_tokens = 8});
  EXPECT_EQ(s.max_tokens(), 8);
  s.prefill(std::vector<int32_t>{1, 5, 6});
  EXPECT_THROW(s.decode(static_cast<int32_t>(m.config.vocab_size)), Error);
  EXPECT_THROW(s.decode(-1), Error);
  EXPECT_EQ(s.n_past(), 3);
  EXPECT_THROW(s.prefill(std::vector<int32_t>(6, 4)), Error);
  EXPECT_EQ(s.n_past(), 3);
  s.prefill(std::vector<int32_t>(5, 4));
  EXPECT_EQ(s.n_past(), 8);
  EXPECT_THROW(s.decode(4), Error);
  // Truncate and reset reuse the cache.
  s.truncate(2);
  EXPECT_EQ(s.n_past(), 2);
  s.reset();
  EXPECT_EQ(s.n_past(), 0);
}

TEST(Session, TruncateThenRerunGivesSameLogits) {
  const Model m = random_model(test::small_config(RopeLayout::Interleaved), 7);
  const auto ids = random_ids(12, m.config.vocab_size, 4);
  Session s(m);
  const Tensor ref = s.forward(ids, Logits::All);
  s.truncate(5);
  const Tensor& tail = s.forward(std::span<const int32_t>(ids.data() + 5, 7), Logits::All);
  for (int64_t r = 0; r < 7; ++r)
    for (int64_t i = 0; i < m.config.vocab_size; ++i) EXPECT_NEAR(tail.row(r)[i], ref.row(r + 5)[i], 1e-5);
}

}  // namespace
}  // namespace mlar
