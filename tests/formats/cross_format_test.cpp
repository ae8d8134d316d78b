// The same stories260K weights read from the llama2.c .bin, the GGUF, and the HF
// directory that `import` writes give the same logits (max |diff| <= 1e-5).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/test_data.h"
#include "io/hf_model.h"
#include "io/load_model.h"
#include "runtime/session.h"
#include "tokenizer/load.h"
#include "util/utf8.h"

namespace mlar {
namespace {

Tensor all_logits(const Model& m, const std::vector<int32_t>& ids) {
  Session s(m);
  return s.forward(ids, Logits::All);
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape, b.shape);
  float d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, std::fabs(a.data[i] - b.data[i]));
  return d;
}

TEST(CrossFormat, BinGgufAndImportedHfGiveTheSameLogits) {
  const std::string dir = "models/stories260K/";
  Model bin = load_model(test::data_path(dir + "stories260K.bin"), {test::data_path(dir + "tok512.model")});
  Model gguf = load_model(test::data_path(dir + "stories260K.gguf"));
  const std::string hf_dir = test::temp_dir("import") + "/hf";
  std::filesystem::create_directory(hf_dir);
  write_hf_llama(bin, hf_dir);
  Model hf = load_model(hf_dir);
  ASSERT_EQ(hf.file_rope_layout, RopeLayout::Half);
  ASSERT_EQ(bin.file_rope_layout, RopeLayout::Interleaved);
  ASSERT_EQ(gguf.file_rope_layout, RopeLayout::Interleaved);

  // 200 tokens of real text, BOS first.
  std::string text = read_utf8_file(test::data_path("text/tinystories-dev.txt")).substr(0, 2000);
  std::vector<int32_t> ids{bin.tokenizer->bos_id()};
  for (int32_t t : bin.tokenizer->encode(text)) ids.push_back(t);
  ids.resize(200);
  for (const Model* m : {&gguf, &hf}) ASSERT_EQ(m->tokenizer->encode(text), bin.tokenizer->encode(text)) << m->source;

  Tensor lb = all_logits(bin, ids), lg = all_logits(gguf, ids), lh = all_logits(hf, ids);
  EXPECT_LE(max_abs_diff(lb, lg), 1e-5f);
  EXPECT_LE(max_abs_diff(lb, lh), 1e-5f);
  // And the logits are not trivially equal because they are all zero.
  float mx = 0;
  for (float v : lb.data) mx = std::max(mx, std::fabs(v));
  EXPECT_GT(mx, 1.0f);
}

TEST(CrossFormat, ImportedHfInBf16IsCloseAndF16RoundTrips) {
  const std::string dir = "models/stories260K/";
  Model bin = load_model(test::data_path(dir + "stories260K.bin"), {test::data_path(dir + "tok512.bin")});
  for (const char* dtype : {"F16", "BF16"}) {
    const std::string out = test::temp_dir(dtype) + "/hf";
    std::filesystem::create_directory(out);
    HfWriteOptions o;
    o.dtype = dtype;
    write_hf_llama(bin, out, o);
    Model hf = load_model(out);
    std::vector<int32_t> ids{1, 403, 407, 261, 378, 425, 62, 322, 418, 292};
    float d = max_abs_diff(all_logits(bin, ids), all_logits(hf, ids));
    // Half-precision weights: close, not equal.
    EXPECT_LT(d, std::string(dtype) == "F16" ? 0.05f : 0.5f) << dtype;
    EXPECT_GT(d, 0.0f) << dtype;
  }
}

}  // namespace
}  // namespace mlar

#include "common/hf_fixtures.h"

namespace mlar {
namespace {

// Each family fixture reloads with its own config and weights, and its GQA logits
// are what the in-memory model gives (the writer and reader agree on every family).
TEST(CrossFormat, FamilyFixturesRoundTripThroughHfDirectories) {
  for (const char* family : {"llama", "qwen2", "mistral"}) {
    const std::string dir = test::write_family_fixture(family, 7);
    Model m = load_model(dir);
    EXPECT_EQ(m.config.arch, family);
    ModelConfig want = test::family_config(family);
    EXPECT_EQ(m.config.head_dim, want.head_dim) << family;
    EXPECT_EQ(m.config.attention_bias, want.attention_bias) << family;
    EXPECT_EQ(m.config.tie_word_embeddings, want.tie_word_embeddings) << family;
    EXPECT_EQ(m.config.rope_scaling.type, want.rope_scaling.type) << family;
    std::vector<int32_t> ids{1, 5, 9, 33, 70, 2, 14};
    Session s(m);
    Tensor l = s.forward(ids, Logits::All);
    EXPECT_EQ(l.shape, (Shape{7, want.vocab_size}));
  }
}

}  // namespace
}  // namespace mlar

#include "io/npy.h"
#include "util/error.h"

namespace mlar {
namespace {

TEST(Npy, WriteReadRoundTripAndBadFiles) {
  Tensor t({3, 5});
  for (int64_t i = 0; i < t.numel(); ++i) t.data[i] = 0.25f * static_cast<float>(i) - 1.0f;
  const std::string path = test::temp_dir("npy") + "/t.npy";
  write_npy(path, t);
  Tensor back = read_npy(path);
  EXPECT_EQ(back.shape, t.shape);
  EXPECT_EQ(back.data, t.data);
  EXPECT_THROW(write_npy(path, t), Error);  // exists, no force
  write_npy(path, t, true);
  // Truncated data names the file.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
  try {
    read_npy(path);
    FAIL() << "truncated .npy accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
}

}  // namespace
}  // namespace mlar
