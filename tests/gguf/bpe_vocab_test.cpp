// The GGUF `llama` reader with a byte-level BPE vocabulary (tokenizer.ggml.model
// "gpt2", as llama.cpp's converter writes Llama 3 models): the tokenizer it rebuilds
// encodes and decodes as the HF tokenizer the vocabulary came from.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/test_data.h"
#include "gguf_test_util.h"
#include "io/gguf.h"
#include "io/gguf_bpe_vocab.h"
#include "io/gguf_model.h"
#include "runtime/random_model.h"
#include "tokenizer/load.h"

namespace mlar {
namespace {

TEST(GgufBpeLlamaRead, LlamaArchitectureFileLoadsItsTokenizer) {
  const auto hf = load_tokenizer(test::source_path("tests/fixtures/tokenizer/llama3_style"));
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 520;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 16;
  c.max_position_embeddings = 64;
  c.rope_layout = RopeLayout::Interleaved;
  const Model m = random_model(c, 3);
  const std::string dir = test::temp_dir("bpe-llama");
  hf->save_hf(dir + "/tok");
  std::string why;
  bool byte_level = false;
  const auto v = gguf_bpe_vocab(*hf, dir + "/tok", c.vocab_size, "test", &why, &byte_level, nullptr);
  ASSERT_TRUE(v) << why;
  EXPECT_TRUE(byte_level);
  EXPECT_EQ(v->pre, "llama-bpe");
  test::write_llama_gguf(m, dir + "/m.gguf",
                         {.tokenizer = false, .extra = [&](GgufWriter& w) { set_gguf_bpe_tokenizer(w, *v); }});
  const Model back = read_gguf_model(dir + "/m.gguf");
  ASSERT_TRUE(back.tokenizer);
  EXPECT_EQ(back.tokenizer->kind(), "hf-bpe");
  EXPECT_EQ(back.tokenizer->bos_id(), hf->bos_id());
  EXPECT_EQ(back.tokenizer->eos_id(), hf->eos_id());

  std::ifstream f(test::data_path("text/wikitext2-test.raw"), std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  for (const std::string& text :
       {std::string("Hello  world\n\n 123456 I'VE <|begin_of_text|>x<|end_of_text|> naïve 日本語 😀"),
        ss.str().substr(0, 40000)}) {
    const auto a = hf->encode(text), b = back.tokenizer->encode(text);
    EXPECT_GT(a.size(), 10u);
    EXPECT_EQ(a, b);
    EXPECT_EQ(back.tokenizer->decode(b), hf->decode(a));
  }
  EXPECT_FALSE(read_gguf_model(dir + "/m.gguf", {.tokenizer = false}).tokenizer);

  // An unknown pre-tokenizer name fails the load, naming the file and the value.
  test::write_llama_gguf(m, dir + "/bad.gguf", {.tokenizer = false, .extra = [&](GgufWriter& w) {
                                                  set_gguf_bpe_tokenizer(w, *v);
                                                  w.set("tokenizer.ggml.pre", "default");
                                                }});
  EXPECT_TRUE(test::contains(test::error_of([&] { read_gguf_model(dir + "/bad.gguf"); }),
                             {dir + "/bad.gguf", "tokenizer.ggml.pre 'default'"}));
}

}  // namespace
}  // namespace mlar
