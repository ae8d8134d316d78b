// KV cache accounting and growth.
#include <gtest/gtest.h>

#include "runtime/decoder.h"
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

TEST(KvCache, GrowsGeometricallyUpToTheLimitAndKeepsRows) {
  GqaLayerCache layer(4);
  layer.reserve(2);
  layer.k(1)[3] = 7.0f;
  layer.v(0)[0] = 3.0f;
  layer.reserve(100);
  EXPECT_EQ(layer.reserved(), 100);
  EXPECT_EQ(layer.k(1)[3], 7.0f);
  EXPECT_EQ(layer.v(0)[0], 3.0f);
  EXPECT_EQ(layer.bytes_reserved(), 100 * 8 * 4);

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
