// GgufWriter -> GgufFile round trips: metadata of every type, tensors F32/F16/BF16
// and raw quantized bytes, alignment, and whole llama models.
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>

#include "common/test_data.h"
#include "common/typed_values.h"
#include "gguf_test_util.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/gguf_writer.h"
#include "io/llama2c.h"
#include "util/half.h"

namespace mlar {
namespace {

Tensor ramp(Shape s, float scale = 0.37f) {
  Tensor t(std::move(s));
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data[i] = scale * static_cast<float>(i % 97 - 48) + 1e-3f * static_cast<float>(i);
  return t;
}

std::string tmp_file(const std::string& name) { return test::temp_dir("gguf-rt") + "/" + name; }

TEST(GgufRoundTrip, MetadataOfEveryType) {
  GgufWriter w;
  w.set("u8", uint8_t{250});
  w.set("i8", int8_t{-120});
  w.set("u16", uint16_t{65000});
  w.set("i16", int16_t{-32000});
  w.set("u32", uint32_t{4000000000u});
  w.set("i32", int32_t{-2000000000});
  w.set("f32", 1.5f);
  w.set("bool.t", true);
  w.set("bool.f", false);
  w.set("str", "héllo \"world\"\n");
  w.set("str.empty", "");
  w.set("u64", std::numeric_limits<uint64_t>::max());
  w.set("i64", std::numeric_limits<int64_t>::min());
  w.set("f64", 3.141592653589793);
  w.set("arr.str", GgufValue::strings({"a", "", "ccc"}));
  w.set("arr.f32", GgufValue::floats({0.5f, -2.0f, 1e-8f}));
  w.set("arr.i32", GgufValue::ints({1, -2, 3}));
  w.set("arr.u8", GgufValue::array(GgufValueType::U8, {uint8_t{1}, uint8_t{2}}));
  w.set("arr.bool", GgufValue::array(GgufValueType::Bool, {true, false, true}));
  w.set("arr.f64", GgufValue::array(GgufValueType::F64, {0.25, -1e300}));
  w.set("arr.u64", GgufValue::array(GgufValueType::U64, {uint64_t{1} << 40}));
  w.set("arr.empty", GgufValue::array(GgufValueType::I64, {}));
  w.set("arr.nested", GgufValue::array(GgufValueType::Array, {GgufValue::ints({1, 2}), GgufValue::strings({"x"}),
                                                              GgufValue::array(GgufValueType::F32, {})}));
  w.set("arr.deep", GgufValue::array(GgufValueType::Array,
                                     {GgufValue::array(GgufValueType::Array, {GgufValue::floats({7.0f})})}));
  w.set("u32", uint32_t{7});  // set() replaces in place
  const std::string path = tmp_file("meta.gguf");
  w.write(path);

  GgufFile f(path);
  const GgufMetadata& md = f.metadata();
  ASSERT_EQ(md.size(), w.metadata().size());
  for (size_t i = 0; i < md.size(); ++i) {
    EXPECT_EQ(md.entries()[i].first, w.metadata().entries()[i].first);
    EXPECT_EQ(md.entries()[i].second, w.metadata().entries()[i].second) << md.entries()[i].first;
  }
  EXPECT_EQ(f.tensors().size(), 0u);
  EXPECT_EQ(md.at("u8").type(), GgufValueType::U8);
  EXPECT_EQ(md.get_int("u8"), 250);
  EXPECT_EQ(md.get_int("i8"), -120);
  EXPECT_EQ(md.get_int("u32"), 7);
  EXPECT_EQ(md.get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(md.get_float("f32"), 1.5);
  EXPECT_EQ(md.get_float("i32"), -2000000000.0);  // integers are accepted as floats
  EXPECT_EQ(md.get_float("f64"), 3.141592653589793);
  EXPECT_TRUE(md.get_bool("bool.t"));
  EXPECT_FALSE(md.get_bool("bool.f"));
  EXPECT_EQ(md.get_string("str"), "héllo \"world\"\n");
  EXPECT_EQ(md.get_string("str.empty"), "");
  EXPECT_EQ(md.get_string_array("arr.str"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(md.get_float_array("arr.f32"), (std::vector<float>{0.5f, -2.0f, 1e-8f}));
  EXPECT_EQ(md.get_int_array("arr.i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(md.get_int_array("arr.u8"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(md.get_int_array("arr.empty"), (std::vector<int64_t>{}));
  EXPECT_EQ(md.at("arr.nested").type_name(), "array of array of int32");
  EXPECT_EQ(md.at("arr.nested").array()->items[1].type_name(), "array of string");
  EXPECT_EQ(md.at("arr.deep").to_string(), "[[[7]]]");
  EXPECT_EQ(md.at("str").to_string(), "\"héllo \\\"world\\\"\\n\"");
  EXPECT_EQ(GgufValue::ints({1, 2, 3, 4}).to_string(2), "[1, 2, ... (4 items)]");
  // Defaults apply only to absent keys.
  EXPECT_EQ(md.get_int("absent", 42), 42);
  EXPECT_EQ(md.get_string("absent", "x"), "x");
}

TEST(GgufRoundTrip, TypedGettersFailClearly) {
  GgufWriter w;
  w.set("s", "text");
  w.set("n", uint32_t{3});
  w.set("big", std::numeric_limits<uint64_t>::max());
  w.set("arr", GgufValue::ints({1}));
  const std::string path = tmp_file("getters.gguf");
  w.write(path);
  GgufFile f(path);
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(test::error_of([&] { md.get_int("nope"); }), path + ": metadata key nope missing");
  EXPECT_EQ(test::error_of([&] { md.get_int("s"); }), path + ": metadata key s has type string, expected integer");
  EXPECT_EQ(test::error_of([&] { md.get_string("n"); }), path + ": metadata key n has type uint32, expected string");
  EXPECT_EQ(test::error_of([&] { md.get_bool("n"); }), path + ": metadata key n has type uint32, expected bool");
  EXPECT_EQ(test::error_of([&] { md.get_int("s", 5); }), path + ": metadata key s has type string, expected integer");
  EXPECT_EQ(test::error_of([&] { md.get_string_array("arr"); }),
            path + ": metadata key arr has type array of int32, expected array of string");
  EXPECT_EQ(test::error_of([&] { md.get_float_array("s"); }),
            path + ": metadata key s has type string, expected array of float32");
  EXPECT_TRUE(test::contains(test::error_of([&] { md.get_int("big"); }), "does not fit in int64"));
}

TEST(GgufRoundTrip, TensorsF32F16Bf16) {
  const Tensor a = ramp({3, 5});
  const Tensor b = ramp({7}, 1e-3f);
  const Tensor c = ramp({2, 3, 4}, 100.0f);
  const Tensor d = ramp({2, 1, 2, 3});
  GgufWriter w;
  w.set("general.architecture", "test");
  w.add_tensor("a.f32", a);
  w.add_tensor("b.f16", b, GgmlType::F16);
  w.add_tensor("c.bf16", c, GgmlType::BF16);
  const TypedTensor d_ref = d, a_ref = a;  // add_tensor_ref keeps references until write
  w.add_tensor_ref("d.f16.ref", d_ref, GgmlType::F16);
  w.add_tensor_ref("a.bf16.ref", a_ref, GgmlType::BF16);
  std::vector<uint8_t> q(2 * 18);
  for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<uint8_t>(i * 7);
  w.add_raw_tensor("q.q4_0", {64}, static_cast<uint32_t>(GgmlType::Q4_0), q);
  const std::string path = tmp_file("tensors.gguf");
  w.write(path);

  GgufFile f(path);
  ASSERT_EQ(f.tensors().size(), 6u);
  EXPECT_EQ(f.tensors()[0].name, "a.f32");
  EXPECT_EQ(f.tensor("a.f32").ne, (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(f.tensor("c.bf16").type, static_cast<uint32_t>(GgmlType::BF16));
  for (const auto& t : f.tensors()) EXPECT_EQ((f.data_offset() + t.offset) % 32, 0u) << t.name;

  EXPECT_EQ(f.read_tensor("a.f32").shape, a.shape);
  EXPECT_EQ(f.read_tensor("a.f32").data, a.data);
  auto check = [&](const std::string& name, const Tensor& src, bool f16) {
    Tensor t = f.read_tensor(name);
    ASSERT_EQ(t.shape, src.shape) << name;
    for (int64_t i = 0; i < src.numel(); ++i) {
      float want = f16 ? f16_to_f32(f32_to_f16(src.data[i])) : bf16_to_f32(f32_to_bf16(src.data[i]));
      ASSERT_EQ(t.data[i], want) << name << " [" << i << "]";
    }
  };
  check("b.f16", b, true);
  check("c.bf16", c, false);
  check("d.f16.ref", d, true);
  check("a.bf16.ref", a, false);
  auto raw = f.tensor_bytes(f.tensor("q.q4_0"));
  EXPECT_EQ(std::vector<uint8_t>(raw.begin(), raw.end()), q);
}

TEST(GgufRoundTrip, CustomAlignment) {
  GgufWriter w;
  w.set("general.alignment", uint32_t{64});
  w.add_tensor("x", ramp({3}));
  w.add_tensor("y", ramp({5}));
  const std::string path = tmp_file("align.gguf");
  w.write(path);
  GgufFile f(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("y").offset, 64u);
  EXPECT_EQ(f.read_tensor("y").data, ramp({5}).data);
}

TEST(GgufRoundTrip, WriterRefusals) {
  GgufWriter w;
  w.add_tensor("x", ramp({4}));
  using test::contains;
  using test::error_of;
  EXPECT_TRUE(contains(error_of([&] { w.add_tensor("x", ramp({4})); }), "duplicate tensor x"));
  EXPECT_TRUE(contains(error_of([&] { w.add_tensor("q", ramp({32}), GgmlType::Q4_0); }),
                       "type Q4_0 cannot be written from floats"));
  EXPECT_TRUE(contains(error_of([&] { w.add_raw_tensor("q", {32}, 2, std::vector<uint8_t>(17)); }),
                       "needs 18 bytes, got 17"));
  EXPECT_TRUE(contains(error_of([&] { w.add_raw_tensor("q", {31}, 2, {}); }), "not a multiple of 32"));
  EXPECT_TRUE(contains(error_of([&] { GgufValue::array(GgufValueType::I32, {1.0f}); }),
                       "array of int32 has item 0 of type float32"));

  const std::string path = tmp_file("exists.gguf");
  w.write(path);
  EXPECT_TRUE(test::contains(test::error_of([&] { w.write(path); }), "already exists"));
  w.write(path, /*force=*/true);
  w.set("general.alignment", uint32_t{24});
  EXPECT_TRUE(test::contains(test::error_of([&] { w.write(tmp_file("bad-align.gguf")); }), "not a power of two"));
  // Nothing is left behind by a failed write.
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(GgufRoundTrip, LlamaModelF32TiedAndHalf) {
  const Model src = read_llama2c(test::data_path("models/stories260K/stories260K.bin"));
  const std::string dir = test::temp_dir("gguf-model");

  // F32 with output.weight: identical weights.
  test::write_llama_gguf(src, dir + "/f32.gguf");
  Model m = read_gguf_model(dir + "/f32.gguf", {.tokenizer = false});
  EXPECT_EQ(test::f32_values(m.weights.layers[3].wk), test::f32_values(src.weights.layers[3].wk));
  EXPECT_EQ(test::f32_values(m.weights.output()), test::f32_values(src.weights.output()));
  EXPECT_EQ(m.config.max_position_embeddings, 512);

  // Tied: no output.weight.
  test::write_llama_gguf(src, dir + "/tied.gguf", {.output = false});
  Model t = read_gguf_model(dir + "/tied.gguf", {.tokenizer = false});
  EXPECT_TRUE(t.config.tie_word_embeddings);
  EXPECT_TRUE(t.weights.lm_head.empty());
  EXPECT_EQ(test::f32_values(t.weights.output()), test::f32_values(src.weights.embed));

  // F16 and BF16: the rounded values.
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16}) {
    test::write_llama_gguf(src, dir + "/half.gguf", {.type = type});
    Model h = read_gguf_model(dir + "/half.gguf", {.tokenizer = false});
    const Tensor x = h.weights.layers[1].w_down.to_f32();
    const Tensor y = src.weights.layers[1].w_down.to_f32();
    ASSERT_EQ(x.shape, y.shape);
    for (int64_t i = 0; i < x.numel(); ++i) {
      float want = type == GgmlType::F16 ? f16_to_f32(f32_to_f16(y.data[i])) : bf16_to_f32(f32_to_bf16(y.data[i]));
      ASSERT_EQ(x.data[i], want) << ggml_type_name(type) << " [" << i << "]";
    }
  }
}

TEST(GgufRoundTrip, AttentionBiasesAndVocab) {
  Model src = read_llama2c(test::data_path("models/stories260K/stories260K.bin"));
  const std::string path = tmp_file("bias.gguf");
  test::write_llama_gguf(src, path, {.extra = [&](GgufWriter& w) {
                                      for (size_t i = 0; i < src.weights.layers.size(); ++i) {
                                        const std::string p = "blk." + std::to_string(i) + ".";
                                        w.add_tensor(p + "attn_q.bias", ramp({src.config.q_dim()}));
                                        w.add_tensor(p + "attn_k.bias", ramp({src.config.kv_dim()}));
                                        w.add_tensor(p + "attn_v.bias", ramp({src.config.kv_dim()}));
                                      }
                                    }});
  Model m = read_gguf_model(path, {.tokenizer = false});
  EXPECT_TRUE(m.config.attention_bias);
  EXPECT_EQ(test::f32_values(m.weights.layers[4].bk), ramp({src.config.kv_dim()}).data);

  GgufFile f(path);
  auto v = read_gguf_spm_vocab(f);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->pieces[5], "tok5");
  EXPECT_EQ(v->scores[5], -5.0f);
  EXPECT_EQ(v->types[2], 3);
}

TEST(GgufRoundTrip, OtherTokenizerKindsAreLeftNull) {
  Model src = read_llama2c(test::data_path("models/stories260K/stories260K.bin"));
  const std::string path = tmp_file("bert.gguf");
  test::write_llama_gguf(src, path, {.tokenizer = false, .extra = [](GgufWriter& w) {
                                       w.set("tokenizer.ggml.model", "bert");
                                       w.set("tokenizer.ggml.tokens", GgufValue::strings({"a", "b"}));
                                     }});
  GgufFile f(path);
  EXPECT_FALSE(read_gguf_spm_vocab(f).has_value());
  Model m = read_gguf_model(path);
  EXPECT_EQ(m.tokenizer, nullptr);

  // "gpt2" is read (bpe_vocab_test.cpp); without tokenizer.ggml.pre it cannot be.
  const std::string gpt2 = tmp_file("gpt2.gguf");
  test::write_llama_gguf(src, gpt2, {.tokenizer = false, .extra = [](GgufWriter& w) {
                                       w.set("tokenizer.ggml.model", "gpt2");
                                       w.set("tokenizer.ggml.tokens", GgufValue::strings({"a", "b"}));
                                     }});
  EXPECT_TRUE(test::contains(test::error_of([&] { read_gguf_model(gpt2); }), {gpt2, "tokenizer.ggml.pre is missing"}));

  const std::string none = tmp_file("notok.gguf");
  test::write_llama_gguf(src, none, {.tokenizer = false});
  EXPECT_EQ(read_gguf_model(none).tokenizer, nullptr);
}

}  // namespace
}  // namespace mlar
