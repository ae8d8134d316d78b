// Malformed GGUF files: each gives one mlar::Error line naming the file and the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "common/test_data.h"
#include "gguf_test_util.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"

namespace mlar {
namespace {

using test::contains;
using test::error_of;
using test::GgufBytes;

const std::string kGguf = "models/stories260K/stories260K.gguf";

std::string gguf_error(const std::string& path) {
  return error_of([&] { GgufFile f(path); });
}

// `msg` with every occurrence of `path` replaced by FILE, so that expectations can
// say where the file is named.
std::string with_file(std::string msg, const std::string& path) {
  for (size_t at; (at = msg.find(path)) != std::string::npos;) msg.replace(at, path.size(), "FILE");
  return msg;
}

// Writes `bytes` to a fresh file and returns the reader's error for it.
std::string bytes_error(const std::string& bytes) {
  const std::string path = test::temp_dir("gguf-bad") + "/bad.gguf";
  test::spit(path, bytes);
  return with_file(gguf_error(path), path);
}

const Model& stories() {
  static const Model m = read_llama2c(test::data_path("models/stories260K/stories260K.bin"));
  return m;
}

std::string model_error(const test::LlamaGgufOptions& o) {
  const std::string path = test::temp_dir("gguf-model-bad") + "/model.gguf";
  test::write_llama_gguf(stories(), path, o);
  return with_file(error_of([&] { read_gguf_model(path, {.tokenizer = false}); }), path);
}

TEST(GgufMalformed, TruncatedAtManyPoints) {
  const std::string real = test::slurp(test::data_path(kGguf));
  ASSERT_EQ(real.size(), 1185376u);
  // header, metadata (token strings), tensor infos, the gap before the data, the data.
  for (size_t cut : {size_t{0}, size_t{3}, size_t{10}, size_t{20}, size_t{30}, size_t{100}, size_t{3000},
                     size_t{9000}, size_t{14000}, size_t{14152}, size_t{14176}, size_t{500000}, real.size() - 1}) {
    const std::string msg = bytes_error(real.substr(0, cut));
    EXPECT_EQ(msg.rfind("FILE: ", 0), 0u) << "cut " << cut << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    if (cut < 4)
      EXPECT_TRUE(contains(msg, "not a GGUF file")) << "cut " << cut;
    else
      EXPECT_TRUE(contains(msg, "truncated")) << "cut " << cut;
  }
}

TEST(GgufMalformed, TrailingBytesAreHarmless) {
  // The data section may be followed by padding; the reader only needs the tensors inside.
  const std::string real = test::slurp(test::data_path(kGguf));
  const std::string path = test::temp_dir("gguf-pad") + "/pad.gguf";
  test::spit(path, real + std::string(64, '\0'));
  GgufFile f(path);
  EXPECT_EQ(f.tensors().size(), 48u);
}

TEST(GgufMalformed, BadMagic) {
  std::string real = test::slurp(test::data_path(kGguf));
  real.replace(0, 4, "GGML");
  const std::string msg = bytes_error(real);
  EXPECT_TRUE(contains(msg, {"FILE: not a GGUF file", "47 47 4d 4c"})) << msg;
}

TEST(GgufMalformed, Versions) {
  std::string real = test::slurp(test::data_path(kGguf));
  for (uint32_t v : {1u, 4u, 0x300u}) {
    std::memcpy(real.data() + 4, &v, 4);
    EXPECT_TRUE(contains(bytes_error(real), {"FILE: ", "unsupported GGUF version " + std::to_string(v)}));
  }
  const uint32_t be = 0x03000000u;
  std::memcpy(real.data() + 4, &be, 4);
  EXPECT_TRUE(contains(bytes_error(real), {"FILE: ", "big-endian GGUF (version 3) is not supported"}));
  // Version 2 has the same layout and is read.
  const uint32_t v2 = 2;
  std::memcpy(real.data() + 4, &v2, 4);
  const std::string path = test::temp_dir("gguf-v2") + "/v2.gguf";
  test::spit(path, real);
  EXPECT_EQ(GgufFile(path).version(), 2u);
}

TEST(GgufMalformed, StringLengthPastEof) {
  std::string msg = bytes_error(GgufBytes().header(0, 1).u64(uint64_t{1} << 40).b + std::string(100, 'k'));
  EXPECT_EQ(msg, "FILE: string length 1099511627776 at offset 24 (key of metadata entry 0) runs past the end of "
                        "the file (132 bytes; truncated?)");
  msg = bytes_error(GgufBytes().header(0, 1).str("k").u32(8).u64(1000).raw("abc", 3).b);
  EXPECT_TRUE(contains(msg, {"FILE: ", "string length 1000", "metadata key k", "runs past the end"})) << msg;
  msg = bytes_error(GgufBytes().header(1, 0).u64(99).b + std::string(30, 'n'));
  EXPECT_TRUE(contains(msg, {"FILE: ", "string length 99", "name of tensor info 0"})) << msg;
}

TEST(GgufMalformed, AbsurdCounts) {
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(uint64_t{1} << 60, 0).b),
                       {"FILE: ", "tensor count 1152921504606846976 is impossible"}));
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(0, uint64_t{1} << 40).b),
                       {"FILE: ", "metadata count 1099511627776 is impossible"}));
  const std::string msg =
      bytes_error(GgufBytes().header(0, 1).str("a").u32(9).u32(4).u64(uint64_t{1} << 50).u32(1).b);
  EXPECT_TRUE(contains(msg, {"FILE: ", "metadata key a is an array of 1125899906842624 uint32 items"})) << msg;
  // String arrays: each item needs at least its 8-byte length.
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(0, 1).str("a").u32(9).u32(8).u64(3).u64(0).u64(0).b),
                       {"FILE: ", "array of 3 string items"}));
}

TEST(GgufMalformed, BadValues) {
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(0, 1).str("k").u32(13).u32(0).b),
                       {"FILE: ", "metadata key k has unknown value type 13"}));
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(0, 1).str("k").u32(9).u32(77).u64(0).b),
                       {"FILE: ", "unknown value type 77"}));
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(0, 1).str("k").u32(7).u8(2).b),
                       {"FILE: ", "metadata key k has bool byte 2"}));
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).b),
                       {"FILE: ", "duplicate metadata key k"}));
  GgufBytes deep;
  deep.header(0, 1).str("k").u32(9);
  for (int i = 0; i < 20; ++i) deep.u32(9).u64(1);
  EXPECT_TRUE(contains(bytes_error(deep.b), {"FILE: ", "nests arrays deeper than 8"}));
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(0, 1).str("general.alignment").u32(4).u32(24).b),
                       {"FILE: ", "general.alignment 24 is not a power of two"}));
  EXPECT_TRUE(contains(bytes_error(GgufBytes().header(0, 1).str("general.alignment").u32(8).str("x").b),
                       {"FILE: ", "general.alignment has type string"}));
}

TEST(GgufMalformed, TensorInfos) {
  auto one = [&](std::initializer_list<uint64_t> ne, uint32_t type, uint64_t offset, size_t data = 64) {
    GgufBytes g;
    g.header(1, 0).tensor("t", ne, type, offset).pad();
    g.b += std::string(data, '\0');
    return bytes_error(g.b);
  };
  std::string msg = one({4}, 0, 1024);
  EXPECT_TRUE(contains(msg, {"FILE: ", "tensor t data [", "lies outside the file"})) << msg;
  EXPECT_TRUE(contains(one({1000}, 0, 0), {"FILE: ", "tensor t data [", "lies outside the file"}));
  EXPECT_TRUE(contains(one({4}, 0, UINT64_MAX - 31), {"FILE: ", "lies outside the file"}));
  EXPECT_TRUE(contains(one({4}, 0, 4), {"FILE: ", "tensor t data offset 4 is not a multiple of the alignment 32"}));
  EXPECT_TRUE(contains(one({4}, 99, 0), {"FILE: ", "tensor t has unknown ggml type 99"}));
  EXPECT_TRUE(contains(one({1, 1, 1, 1, 1}, 0, 0), {"FILE: ", "tensor t has 5 dimensions (at most 4)"}));
  EXPECT_TRUE(contains(one({UINT64_MAX}, 0, 0), {"FILE: ", "tensor t has an impossible dimension"}));
  EXPECT_TRUE(contains(one({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0), {"FILE: ", "impossible dimension"}));
  EXPECT_TRUE(contains(one({31}, 2, 0), {"FILE: ", "tensor t of type Q4_0 has rows of 31 values"}));
  EXPECT_TRUE(contains(one({uint64_t{1} << 62}, 0, 0), {"FILE: ", "tensor t is impossibly large"}));

  GgufBytes overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad();
  overlap.b += std::string(96, '\0');
  msg = bytes_error(overlap.b);
  EXPECT_EQ(msg, "FILE: tensors a and b overlap in the data section ([0, 64) and [32, 64))");

  GgufBytes dup;
  dup.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad();
  dup.b += std::string(64, '\0');
  EXPECT_TRUE(contains(bytes_error(dup.b), {"FILE: ", "duplicate tensor a"}));
}

TEST(GgufMalformed, UnsupportedTensorTypeReadAsFloat) {
  const std::string path = test::temp_dir("gguf-q4") + "/q4.gguf";
  test::write_llama_gguf(stories(), path, {.q4_tensor = "blk.0.attn_q.weight"});
  const std::string msg = error_of([&] { read_gguf_model(path, {.tokenizer = false}); });
  EXPECT_EQ(msg, path + ": tensor blk.0.attn_q.weight has type Q4_0 (2); only F32, F16, BF16 are supported");
  // The generic reader parses the file and gives the raw bytes; only float reads refuse.
  GgufFile f(path);
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").nbytes, 64u * 64u / 32u * 18u);
  EXPECT_EQ(error_of([&] { f.read_tensor("blk.0.attn_q.weight"); }), msg);
  EXPECT_EQ(ggml_type_name(14), "Q6_K");
  EXPECT_EQ(ggml_type_name(12), "Q4_K");
  EXPECT_EQ(ggml_type_name(8), "Q8_0");
  EXPECT_EQ(ggml_type_name(5), "unknown");
}

TEST(GgufMalformed, WrongArchitecture) {
  EXPECT_EQ(model_error({.arch = "qwen2"}),
            "FILE: GGUF architecture 'qwen2' is not supported (only 'llama' is read)");
}

TEST(GgufMalformed, MissingTensor) {
  EXPECT_EQ(model_error({.skip = {"blk.3.attn_k.weight"}}), "FILE: missing tensor blk.3.attn_k.weight");
  EXPECT_EQ(model_error({.skip = {"output_norm.weight"}}), "FILE: missing tensor output_norm.weight");
  EXPECT_EQ(model_error({.skip = {"token_embd.weight"}}), "FILE: missing tensor token_embd.weight");
}

TEST(GgufMalformed, ModelShapesAndExtras) {
  const ModelConfig& c = stories().config;
  std::string msg = model_error({.skip = {"blk.2.attn_k.weight"}, .extra = [&](GgufWriter& w) {
                                   w.add_tensor("blk.2.attn_k.weight", Tensor({c.kv_dim(), c.hidden_size + 1}));
                                 }});
  EXPECT_EQ(msg, "FILE: tensor blk.2.attn_k.weight has shape [32, 65], expected [32, 64]");
  msg = model_error({.extra = [](GgufWriter& w) { w.add_tensor("blk.0.ffn_gate_exps.weight", Tensor({4})); }});
  EXPECT_EQ(msg, "FILE: unexpected tensor blk.0.ffn_gate_exps.weight (not part of a llama model)");
  msg = model_error({.extra = [](GgufWriter& w) { w.set("llama.block_count", "five"); }});
  EXPECT_EQ(msg, "FILE: metadata key llama.block_count has type string, expected integer");
  msg = model_error({.extra = [](GgufWriter& w) { w.set("llama.rope.dimension_count", uint32_t{4}); }});
  EXPECT_TRUE(contains(msg, {"FILE: ", "partial RoPE is not supported"})) << msg;
  msg = model_error({.extra = [](GgufWriter& w) { w.set("llama.attention.head_count_kv", uint32_t{3}); }});
  EXPECT_TRUE(contains(msg, {"FILE: ", "num_key_value_heads (3) does not divide num_attention_heads (8)"})) << msg;
  msg = model_error({.extra = [](GgufWriter& w) { w.set("llama.embedding_length", uint64_t{1} << 40); }});
  EXPECT_TRUE(contains(msg, {"FILE: ", "llama.embedding_length = 1099511627776 is out of range"})) << msg;
  msg = model_error({.extra = [](GgufWriter& w) { w.set("llama.rope.scaling.type", "yarn"); }});
  EXPECT_TRUE(contains(msg, {"FILE: ", "'yarn' is not supported"})) << msg;

  GgufWriter bare;
  bare.set("general.architecture", "llama");
  const std::string path = test::temp_dir("gguf-bare") + "/bare.gguf";
  bare.write(path);
  EXPECT_EQ(with_file(error_of([&] { read_gguf_model(path); }), path),
            "FILE: metadata key llama.embedding_length missing");
}

// Llama 3 RoPE scaling arrives as rope_freqs.weight; head size 8 has 4 frequencies
// 1, 0.1, 0.01, 0.001 (wavelengths 6.3, 63, 628, 6283): with an original context of
// 64 they fall in all three regions.
TEST(GgufMalformed, RopeFreqs) {
  const double factor = 8, orig = 64;
  Tensor rf({4});
  for (int i = 0; i < 4; ++i) {
    const double wavelen = 2 * std::numbers::pi * std::pow(10000.0, 2.0 * i / 8.0);
    double div = 1;
    if (wavelen > orig) {
      div = factor;
    } else if (wavelen >= orig / 4) {
      const double smooth = (orig / wavelen - 1) / 3;
      div = 1 / ((1 - smooth) / factor + smooth);
    }
    rf.data[i] = static_cast<float>(div);
  }
  EXPECT_GT(rf.data[1], 1.0f);
  EXPECT_LT(rf.data[1], 8.0f);
  auto with = [&](const Tensor& t) {
    return test::LlamaGgufOptions{.extra = [t](GgufWriter& w) {
      w.set("llama.rope.scaling.original_context_length", uint32_t{64});
      w.add_tensor("rope_freqs.weight", t);
    }};
  };
  const std::string path = test::temp_dir("gguf-rope") + "/rope.gguf";
  test::write_llama_gguf(stories(), path, with(rf));
  const Model m = read_gguf_model(path, {.tokenizer = false});
  EXPECT_EQ(m.config.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_EQ(m.config.rope_scaling.factor, 8.0);
  EXPECT_EQ(m.config.rope_scaling.original_max_position, 64);

  Tensor bad = rf;
  bad.data[1] *= 1.01f;
  EXPECT_TRUE(contains(model_error(with(bad)), {"FILE: ", "rope_freqs.weight[1]", "not supported"}));
}

}  // namespace
}  // namespace mlar
