// The real stories260K.gguf: its metadata, and its weights against the llama2.c
// checkpoint of the same model (this fixes that the GGUF layout, ne order and
// interleaved q/k rows, agrees with ours).
#include <gtest/gtest.h>

#include "common/test_data.h"
#include "common/typed_values.h"
#include "gguf_test_util.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"
#include "tokenizer/load.h"

namespace mlar {
namespace {

const std::string kGguf = "models/stories260K/stories260K.gguf";
const std::string kBin = "models/stories260K/stories260K.bin";

void expect_same(const TypedTensor& a, const TypedTensor& b, const std::string& what) {
  ASSERT_EQ(a.shape, b.shape) << what;
  ASSERT_EQ(test::f32_values(a), test::f32_values(b)) << what;  // bit-exact
}

TEST(StoriesGguf, HeaderAndMetadata) {
  GgufFile f(test::data_path(kGguf));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.metadata().size(), 19u);
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(md.get_string("general.architecture"), "llama");
  EXPECT_EQ(md.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(md.get_int("llama.block_count"), 5);
  EXPECT_EQ(md.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(md.at("llama.context_length").type(), GgufValueType::U32);
  EXPECT_FLOAT_EQ(static_cast<float>(md.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(md.get_int("tokenizer.ggml.padding_token_id"), 0xffffffffLL);
  auto tokens = md.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(md.at("tokenizer.ggml.tokens").type_name(), "array of string");

  const GgufTensorInfo& q = f.tensor("blk.0.attn_k.weight");
  EXPECT_EQ(q.ne, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(q.shape(), (Shape{32, 64}));
  EXPECT_EQ(q.type, 0u);
  EXPECT_EQ(q.nbytes, 32u * 64u * 4u);
  EXPECT_EQ(f.data_offset() + f.tensors().back().offset + f.tensors().back().nbytes, f.file_size());
}

TEST(StoriesGguf, WeightsEqualLlama2c) {
  Model g = read_gguf_model(test::data_path(kGguf), {.tokenizer = false});
  Model b = read_llama2c(test::data_path(kBin));
  EXPECT_EQ(g.format, "gguf");
  EXPECT_EQ(g.tokenizer, nullptr);

  const ModelConfig &gc = g.config, &bc = b.config;
  EXPECT_EQ(gc.arch, "llama");
  EXPECT_EQ(gc.vocab_size, bc.vocab_size);
  EXPECT_EQ(gc.hidden_size, bc.hidden_size);
  EXPECT_EQ(gc.intermediate_size, bc.intermediate_size);
  EXPECT_EQ(gc.num_layers, bc.num_layers);
  EXPECT_EQ(gc.num_heads, bc.num_heads);
  EXPECT_EQ(gc.num_kv_heads, bc.num_kv_heads);
  EXPECT_EQ(gc.head_dim, bc.head_dim);
  EXPECT_EQ(gc.rope_layout, RopeLayout::Interleaved);
  EXPECT_EQ(gc.rope_layout, bc.rope_layout);
  EXPECT_DOUBLE_EQ(gc.rope_theta, 10000.0);
  EXPECT_NEAR(gc.rms_norm_eps, 1e-5, 1e-12);
  EXPECT_EQ(gc.max_position_embeddings, 2048);  // the .bin says 512; the GGUF converter wrote 2048
  EXPECT_EQ(gc.bos_token_id, 1);
  EXPECT_EQ(gc.eos_token_id, 2);
  EXPECT_FALSE(gc.tie_word_embeddings);  // output.weight is stored (a copy of the embedding)

  const ModelWeights &gw = g.weights, &bw = b.weights;
  expect_same(gw.embed, bw.embed, "embed");
  expect_same(gw.final_norm, bw.final_norm, "final_norm");
  expect_same(gw.output(), bw.output(), "output");
  ASSERT_EQ(gw.layers.size(), bw.layers.size());
  for (size_t i = 0; i < gw.layers.size(); ++i) {
    const LayerWeights &x = gw.layers[i], &y = bw.layers[i];
    const std::string l = "layer " + std::to_string(i) + " ";
    expect_same(x.attn_norm, y.attn_norm, l + "attn_norm");
    expect_same(x.wq, y.wq, l + "wq");
    expect_same(x.wk, y.wk, l + "wk");
    expect_same(x.wv, y.wv, l + "wv");
    expect_same(x.wo, y.wo, l + "wo");
    expect_same(x.ffn_norm, y.ffn_norm, l + "ffn_norm");
    expect_same(x.w_gate, y.w_gate, l + "w_gate");
    expect_same(x.w_up, y.w_up, l + "w_up");
    expect_same(x.w_down, y.w_down, l + "w_down");
    EXPECT_TRUE(x.bq.empty());
  }
}

TEST(StoriesGguf, SpmVocab) {
  GgufFile f(test::data_path(kGguf));
  auto v = read_gguf_spm_vocab(f);
  ASSERT_TRUE(v.has_value());
  ASSERT_EQ(v->pieces.size(), 512u);
  ASSERT_EQ(v->scores.size(), 512u);
  ASSERT_EQ(v->types.size(), 512u);
  EXPECT_EQ(v->pieces[0], "<unk>");
  EXPECT_EQ(v->pieces[2], "</s>");
  EXPECT_EQ(v->pieces[3], "<0x00>");
  EXPECT_EQ(v->types[0], 2);
  EXPECT_EQ(v->types[1], 3);
  EXPECT_EQ(v->types[3], 6);
  EXPECT_EQ(v->bos_id, 1);
  EXPECT_EQ(v->eos_id, 2);
  EXPECT_EQ(v->unk_id, 0);
  EXPECT_TRUE(v->add_dummy_prefix);
}

TEST(StoriesGguf, ModelWithTokenizer) {
  const Model m = read_gguf_model(test::data_path(kGguf));
  ASSERT_NE(m.tokenizer, nullptr);
  EXPECT_EQ(m.tokenizer->vocab_size(), 512);
  EXPECT_EQ(m.tokenizer->bos_id(), 1);
  EXPECT_EQ(m.tokenizer->eos_id(), 2);
}

// The vocabulary in the GGUF metadata is tok512.bin's: both tokenizers agree.
TEST(StoriesGguf, TokenizerMatchesTok512) {
  const Model m = read_gguf_model(test::data_path(kGguf));
  ASSERT_NE(m.tokenizer, nullptr);
  const auto tok512 = load_tokenizer(test::data_path("models/stories260K/tok512.bin"));
  for (const char* text : {"Once upon a time, there was a little girl named Lily.", "Hello world!", "  two spaces",
                           "caf\xc3\xa9 \xe2\x9c\x93 100%", ""}) {
    const auto ids = m.tokenizer->encode(text);
    EXPECT_EQ(ids.empty(), *text == '\0') << text;
    EXPECT_EQ(ids, tok512->encode(text)) << text;
    EXPECT_EQ(m.tokenizer->decode(ids), tok512->decode(ids)) << text;
  }
}

}  // namespace
}  // namespace mlar
