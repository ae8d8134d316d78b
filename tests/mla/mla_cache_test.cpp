// What MLA caches and what absorbed decode allocates: only [latent | rope key] rows
// per token, and scratch that does not hold per-token expanded keys or values.
#include <gtest/gtest.h>

#include "mla_test_models.h"
#include "runtime/mla_attention.h"
#include "runtime/mla_cache.h"
#include "runtime/session.h"
#include "runtime/test_models.h"
#include "ops/scalar_reference.h"
#include "util/error.h"

namespace mlar {
namespace {

TEST(MlaCache, BytesAreLatentPlusRopeKeyPerLayer) {
  for (bool repeat : {false, true}) {
    const Model m =
        random_mla_model(test::mla_config({.name = "x", .repeat = repeat, .latent_norm = true, .per_layer = true}), 4);
    const MlaConfig& a = *m.config.mla;
    int64_t per_token = 0;
    for (int64_t l = 0; l < m.config.num_layers; ++l) per_token += (a.rank(l) + a.rope_values()) * 4;
    ASSERT_NE(a.rank(0), a.rank(1));
    const int64_t max_tokens = 50;
    Session s(m, {.max_tokens = max_tokens, .mla_eval = MlaEval::Absorbed});
    EXPECT_EQ(s.cache().bytes_per_token(), per_token);
    for (int64_t l = 0; l < m.config.num_layers; ++l)
      EXPECT_EQ(s.cache().layer(l).values_per_token(), a.rank(l) + a.rope_values());
    EXPECT_EQ(s.cache().bytes_per_token(), m.config.kv_values_per_token_layer(0) * 4 +
                                               m.config.kv_values_per_token_layer(1) * 4);
    const auto ids = test::mla_random_ids(max_tokens, m.config.vocab_size, 1);
    s.prefill(std::span<const int32_t>(ids.data(), 10));
    for (int64_t i = 10; i < max_tokens; ++i) s.decode(ids[size_t(i)]);
    EXPECT_EQ(s.cache().bytes_reserved(), per_token * max_tokens);  // full context: nothing else
    EXPECT_EQ(s.cache().bytes_at_capacity(), per_token * max_tokens);
  }
}

TEST(MlaCache, RowsHoldLatentThenRopeKey) {
  // Small integers: exact in every dtype.
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    MlaLayerCache c(5, 3, t);
    c.reserve(4);
    std::vector<float> rows(4 * 8);  // [4, r + R]
    for (int64_t i = 0; i < 4 * 8; ++i) rows[size_t(i)] = float(i / 8 * 10 + i % 8);
    c.rows().write(0, rows.data(), 8, 4);
    c.reserve(100);  // growth keeps the rows
    EXPECT_EQ(c.reserved(), 100);
    EXPECT_EQ(c.values_per_token(), 8);
    EXPECT_EQ(c.dtype(), t);
    EXPECT_EQ(c.bytes_per_token(), 8 * int64_t(dtype_size(t)));
    std::vector<float> back(2 * 8);
    c.rows().read(2, 2, back.data(), 8);
    EXPECT_EQ(back[4], 24.0f);      // latent of token 2
    EXPECT_EQ(back[8 + 5], 35.0f);  // rope key of token 3
  }
  EXPECT_THROW(MlaLayerCache(5, 3, DType::I32), Error);
}

// Scratch bytes of one decode step of layer 0 at a context of `tokens` (tokens - 1
// cached, one new), in a fresh workspace.
int64_t decode_workspace_bytes(const Model& m, MlaEval e, int64_t tokens) {
  const MlaAttention attn(m.config, 0, m.weights.layers[0].mla, e);
  auto cache = attn.make_cache(DType::F32);
  cache->reserve(tokens);
  const int64_t D = m.config.hidden_size;
  const auto x = test::random_floats(tokens * D, 7);  // [tokens, D]
  std::vector<float> out(size_t(tokens * D));
  Workspace fill;
  attn.forward(x.data(), tokens - 1, 0, *cache, fill, out.data());
  Workspace ws;
  attn.forward(x.data() + (tokens - 1) * D, 1, tokens - 1, *cache, ws, out.data());
  return ws.bytes();
}

TEST(MlaCache, AbsorbedDecodeScratchDoesNotGrowWithExpandedKeys) {
  for (bool repeat : {false, true}) {
    const Model m = random_mla_model(test::mla_config({.name = "x", .repeat = repeat, .latent_norm = !repeat}), 5);
    const MlaConfig& a = *m.config.mla;
    const int64_t H = m.config.num_heads, t1 = 64, t2 = 512;
    const int64_t abs1 = decode_workspace_bytes(m, MlaEval::Absorbed, t1);
    const int64_t abs2 = decode_workspace_bytes(m, MlaEval::Absorbed, t2);
    const int64_t nai1 = decode_workspace_bytes(m, MlaEval::Naive, t1);
    const int64_t nai2 = decode_workspace_bytes(m, MlaEval::Naive, t2);
    // Absorbed: only the [n_h, T] scores grow with the context.
    EXPECT_LE(abs2 - abs1, H * (t2 - t1) * 4) << repeat;
    // Naive: per-token keys [T, n_h, d_n + n_r d_r] and values [T, n_h, d_v].
    EXPECT_GE(nai2 - nai1, (t2 - t1) * H * (a.qk_nope_head_dim + a.rope_values() + a.v_head_dim) * 4) << repeat;
    EXPECT_LT(abs2 * 4, nai2) << repeat;
    std::printf("%s decode scratch at T=%lld: absorbed %lld B, naive %lld B (T=%lld: %lld, %lld)\n",
                repeat ? "repeat" : "deepseek", (long long)t2, (long long)abs2, (long long)nai2, (long long)t1,
                (long long)abs1, (long long)nai1);
  }
}

}  // namespace
}  // namespace mlar
