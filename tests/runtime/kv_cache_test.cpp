// KV cache accounting and growth.
#include <gtest/gtest.h>

#include "runtime/decoder.h"
#include "tensor/typed_tensor.h"
#include "runtime/random_model.h"
#include "runtime/session.h"
#include "test_models.h"
#include "util/error.h"

namespace mlar {
namespace {

TEST(KvCache, Stories260KBytes) {
  const Model& m = test::stories260k();
  Session s(m);
  // 5 layers x (K + V) x 4 kv heads x 8 values x 4 bytes.
  EXPECT_EQ(s.cache().bytes_per_token(), 5 * 2 * 4 * 8 * 4);
  EXPECT_EQ(s.cache().bytes_per_token(), m.config.num_layers * m.config.kv_values_per_token_layer() * 4);
  EXPECT_EQ(s.max_tokens(), 512);
  EXPECT_EQ(s.cache().bytes_at_capacity(), 512 * 1280);
  EXPECT_EQ(s.cache().bytes_used(), 0);
  s.prefill(std::vector<int32_t>{1, 400, 300});
  EXPECT_EQ(s.cache().bytes_used(), 3 * 1280);
  EXPECT_GE(s.cache().bytes_reserved(), s.cache().bytes_used());
  EXPECT_LE(s.cache().bytes_reserved(), s.cache().bytes_at_capacity());
}

TEST(KvCache, BytesInTheStoredDtype) {
  const Model& m = test::stories260k();
  for (DType t : {DType::BF16, DType::F16}) {
    Session s(m, {.kv_dtype = t});
    EXPECT_EQ(s.cache().bytes_per_token(), 5 * 2 * 4 * 8 * 2);
    EXPECT_EQ(s.cache().layer(0).dtype(), t);
    s.prefill(std::vector<int32_t>{1, 400, 300});
    EXPECT_EQ(s.cache().bytes_used(), 3 * 640);
  }
}

// A BF16 cache: token-by-token decode reads the same rounded rows as one prefill of
// all tokens (1e-4), and the logits stay close to the f32 cache's.
TEST(KvCache, Bf16DecodeMatchesPrefillOnTheSameRoundedRows) {
  const Model& m = test::stories260k();
  const std::vector<int32_t> ids{1, 400, 300, 17, 99, 250, 3, 77, 451, 12, 8, 300, 301, 302, 44, 5, 6, 200, 100, 9};
  const Tensor f32 = Session(m, {.kv_dtype = DType::F32}).forward(ids, Logits::All);
  Session all(m, {.kv_dtype = DType::BF16});
  const Tensor bf16 = all.forward(ids, Logits::All);
  const int64_t V = m.config.vocab_size;
  double moved = 0, scale = 0;
  for (size_t i = 0; i < bf16.data.size(); ++i) {
    moved = std::max(moved, double(std::abs(bf16.data[i] - f32.data[i])));
    scale = std::max(scale, double(std::abs(f32.data[i])));
  }
  EXPECT_GT(moved, 0.0);  // the cache really rounds
  EXPECT_LE(moved, 1e-2 * scale);
  Session s(m, {.kv_dtype = DType::BF16});
  for (size_t i = 0; i < ids.size(); ++i) {
    const Tensor& l = s.decode(ids[i]);
    double d = 0;
    for (int64_t v = 0; v < V; ++v) d = std::max(d, double(std::abs(l.data[size_t(v)] - bf16.data[i * size_t(V) + size_t(v)])));
    EXPECT_LE(d, 1e-4 * scale) << "position " << i;
  }
}

// Writing rounds to nearest even in the cache's dtype.
TEST(KvCache, WritesRoundToNearestEven) {
  const float x[3] = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.0f + 1.0f / 2048};  // bf16 / f16 ties
  GqaLayerCache b(3, DType::BF16), h(3, DType::F16);
  b.reserve(1);
  h.reserve(1);
  b.k().write(0, x, 3, 1);
  h.k().write(0, x, 3, 1);
  float rb[3], rh[3];
  b.k().read(0, 1, rb, 3);
  h.k().read(0, 1, rh, 3);
  EXPECT_EQ(rb[0], 1.0f);                 // tie -> even mantissa
  EXPECT_EQ(rb[1], 1.0f + 4.0f / 256);    // tie -> even mantissa (up)
  EXPECT_EQ(rh[2], 1.0f);                 // f16 tie -> even
  EXPECT_EQ(rh[0], x[0]);                 // exact in f16
}

// A GQA cache stores each kv head's pieces contiguously over the tokens; rows go in
// and come out whole, and growing moves every head's block without losing rows.
TEST(KvCache, HeadMajorRowsRoundTripAndGrow) {
  for (DType t : {DType::F32, DType::BF16}) {
    GqaLayerCache layer(6, t, 3);  // 3 kv heads of 2
    layer.reserve(4);
    const float rows[2][6] = {{1, 2, 3, 4, 5, 6}, {-1, -2, -3, -4, -5, -6}};
    layer.k().write(1, rows[0], 6, 2);  // tokens 1 and 2
    EXPECT_EQ(layer.k().head_stride(), 4 * 2);
    auto element = [&](int64_t h, int64_t tok, int64_t c) {  // head h, token tok, column c of the stored block
      const auto* base = static_cast<const unsigned char*>(layer.k().view().data);
      float f;
      convert_values(base + size_t(h * layer.k().head_stride() + tok * 2 + c) * dtype_size(t), t, &f, DType::F32, 1);
      return f;
    };
    EXPECT_EQ(element(2, 1, 1), 6.0f);   // token 1, column 5: head 2's second value
    EXPECT_EQ(element(1, 2, 0), -3.0f);  // token 2, column 2
    layer.reserve(50);
    EXPECT_EQ(layer.k().head_stride(), 50 * 2);
    EXPECT_EQ(element(2, 1, 1), 6.0f);
    float back[2][6];
    layer.k().read(1, 2, back[0], 6);
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 6; ++c) EXPECT_EQ(back[r][c], rows[r][c]) << r << " " << c;
    EXPECT_EQ(layer.bytes_reserved(), 50 * 12 * int64_t(dtype_size(t)));
  }
  EXPECT_THROW(GqaLayerCache(6, DType::F32, 4), Error);  // 4 heads do not divide 6 values
}

TEST(KvCache, GrowsGeometricallyUpToTheLimitAndKeepsRows) {
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    GqaLayerCache layer(4, t);
    layer.reserve(2);
    const float k1[4] = {0, 0, 0, 7.0f}, v0[4] = {3.0f, 0, 0, 0};
    layer.k().write(1, k1, 4, 1);
    layer.v().write(0, v0, 4, 1);
    layer.reserve(100);
    EXPECT_EQ(layer.reserved(), 100);
    float k[4], v[4];
    layer.k().read(1, 1, k, 4);
    layer.v().read(0, 1, v, 4);
    EXPECT_EQ(k[3], 7.0f);
    EXPECT_EQ(v[0], 3.0f);
    EXPECT_EQ(layer.bytes_reserved(), 100 * 8 * int64_t(dtype_size(t)));
    EXPECT_THROW(layer.k().write(99, k1, 4, 2), Error);  // past the reserved rows
  }

  std::vector<std::unique_ptr<LayerCache>> layers;
  layers.push_back(std::make_unique<GqaLayerCache>(4));
  KvCache cache(std::move(layers), 1000);
  cache.reserve_more(10);
  EXPECT_EQ(cache.layer(0).reserved(), 64);
  cache.advance(10);
  cache.reserve_more(60);
  EXPECT_EQ(cache.layer(0).reserved(), 128);
  cache.advance(60);
  cache.reserve_more(930);
  EXPECT_EQ(cache.layer(0).reserved(), 1000);
  EXPECT_THROW(cache.reserve_more(931), Error);
}

}  // namespace
}  // namespace mlar
