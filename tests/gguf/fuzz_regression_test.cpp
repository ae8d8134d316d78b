// Inputs the GGUF fuzz target (fuzz/fuzz_gguf.cpp) found or that review of it
// showed: each crashed, tripped a sanitizer or allocated absurdly before its fix.
#include <gtest/gtest.h>

#include <cstring>

#include "common/test_data.h"
#include "gguf_test_util.h"
#include "io/deepseek_read.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"

namespace mlar {
namespace {

using test::contains;
using test::error_of;
using test::GgufBytes;

std::string write(const std::string& tag, const std::string& bytes) {
  const std::string path = test::temp_dir(tag) + "/f.gguf";
  test::spit(path, bytes);
  return path;
}

// llama.block_count = 2^30 on a one-layer file: read_gguf_model sized the layer
// vector first (malloc of 7.4 GB per the fuzzer's report, 1.3 TB for 2^30); now
// it stops at the first missing tensor.
TEST(GgufFuzzRegression, BlockCountBeyondTheTensors) {
  const Model m = read_llama2c(test::data_path("models/stories260K/stories260K.bin"));
  const std::string path = test::temp_dir("gguf-fuzz-blocks") + "/model.gguf";
  test::LlamaGgufOptions o;
  o.extra = [](GgufWriter& w) { w.set("llama.block_count", uint32_t{1} << 30); };
  test::write_llama_gguf(m, path, o);
  const std::string msg = error_of([&] { read_gguf_model(path, {.tokenizer = false}); });
  EXPECT_TRUE(contains(msg, {path + ": ", "missing tensor blk.5.attn_norm.weight"}));
}

// ne = [0, 2^62, 4]: 0 elements in file order, but Shape (reversed) multiplied
// 4 * 2^62 first: signed overflow (UBSan) in shape_numel when read as float.
TEST(GgufFuzzRegression, ZeroDimensionDoesNotHideAnOverflow) {
  GgufBytes b;
  b.header(1, 0).tensor("w", {0, uint64_t{1} << 62, 4}, 0, 0).pad();
  const std::string path = write("gguf-fuzz-zero-dim", b.b);
  const std::string msg = error_of([&] { GgufFile f(path); });
  EXPECT_TRUE(contains(msg, {path + ": ", "tensor w has an impossible dimension 4"}));
  // A zero dimension with sane ones is still an empty tensor.
  GgufBytes ok;
  ok.header(1, 0).tensor("w", {0, 1 << 20, 4}, 0, 0).pad();
  GgufFile f(write("gguf-fuzz-zero-ok", ok.b));
  EXPECT_EQ(f.read_tensor("w").numel(), 0);
}

// tokenizer.ggml.bos_token_id = -5 (int32) in a file without tokenizer.ggml.model:
// accepted into ModelConfig, where perplexity feeds it to the embedding lookup.
TEST(GgufFuzzRegression, NegativeBosTokenId) {
  const Model m = read_llama2c(test::data_path("models/stories260K/stories260K.bin"));
  const std::string path = test::temp_dir("gguf-fuzz-bos") + "/model.gguf";
  test::LlamaGgufOptions o;
  o.tokenizer = false;
  o.extra = [](GgufWriter& w) { w.set("tokenizer.ggml.bos_token_id", int32_t{-5}); };
  test::write_llama_gguf(m, path, o);
  const std::string msg = error_of([&] { read_gguf_model(path); });
  EXPECT_TRUE(contains(msg, {path + ": ", "tokenizer.ggml.bos_token_id = -5 is out of range"}));
}

// The deepseek2 reader had the same up-front layer allocation: block_count and
// leading_dense_block_count 2^30 on the one-layer seed of the fuzz corpus made
// ASan refuse a 1.3 TB allocation.
TEST(GgufFuzzRegression, Deepseek2BlockCountBeyondTheTensors) {
  std::string bytes = test::slurp(test::source_path("fuzz/corpus/gguf/deepseek2_mla_f16.gguf"));
  ASSERT_FALSE(bytes.empty());
  for (const std::string key : {"deepseek2.block_count", "deepseek2.leading_dense_block_count"}) {
    GgufBytes k;
    k.str(key).u32(static_cast<uint32_t>(GgufValueType::U32));
    const size_t at = bytes.find(k.b);
    ASSERT_NE(at, std::string::npos) << key;
    const uint32_t v = uint32_t{1} << 30;
    std::memcpy(bytes.data() + at + k.b.size(), &v, 4);
  }
  const std::string path = write("gguf-fuzz-ds2-blocks", bytes);
  ASSERT_TRUE(is_gguf_deepseek2(path));
  const std::string msg = error_of([&] { read_gguf_deepseek2_model(path); });
  EXPECT_TRUE(contains(msg, {path + ": ", "missing tensor blk.1.attn_norm.weight"}));
}

}  // namespace
}  // namespace mlar
