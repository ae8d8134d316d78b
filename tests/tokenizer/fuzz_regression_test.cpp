// Inputs the tokenizer fuzz targets (fuzz/fuzz_hf_tokenizer.cpp ...) found or that
// review of them showed: each crashed, tripped a sanitizer or allocated absurdly
// before its fix.
#include <gtest/gtest.h>

#include <string>

#include "common/test_data.h"
#include "tokenizer/load.h"
#include "tokenizer_test_util.h"

namespace mlar {
namespace {

std::string bpe(const std::string& vocab, const std::string& extra = "") {
  return R"({"model":{"type":"BPE","vocab":)" + vocab + R"(,"merges":[]})" + extra + "}";
}

// A float id: nlohmann's get<int64_t>() of 2.8e22 is undefined behaviour (UBSan
// float-cast-overflow, found by the fuzzer); the same for added tokens and the
// Strip decoder's counts.
TEST(TokenizerFuzzRegression, IdsMustBeIntegers) {
  test::expect_error([] { parse_hf_tokenizer(bpe(R"({"a":2.79223e22})"), "t.json"); },
                     {"t.json: ", "model.vocab gives 'a' the id 2.79223e+22"});
  test::expect_error([] { parse_hf_tokenizer(bpe(R"({"a":1.5})"), "t.json"); }, {"model.vocab gives 'a' the id 1.5"});
  test::expect_error(
      [] { parse_hf_tokenizer(bpe(R"({"a":0})", R"(,"added_tokens":[{"id":1e300,"content":"x"}])"), "t.json"); },
      {"t.json: ", "added token \"x\" has id 1e+300"});
  test::expect_error(
      [] { parse_hf_tokenizer(bpe(R"({"a":0})", R"(,"decoder":{"type":"Strip","start":1e300})"), "t.json"); },
      {"t.json: ", "Strip decoder start must be a non-negative integer"});
  test::expect_error(
      [] { parse_hf_tokenizer(bpe(R"({"a":0})", R"(,"decoder":{"type":"Strip","stop":-1})"), "t.json"); },
      {"Strip decoder stop must be a non-negative integer"});
}

// One token with id 2^30 made the id table 8 GB (out-of-memory in the fuzzer).
TEST(TokenizerFuzzRegression, SparseIdsDoNotAllocateATable) {
  const auto t = parse_hf_tokenizer(bpe(R"({"a":0,"b":1073741824})"), "t.json");
  EXPECT_EQ(t->vocab_size(), (int64_t{1} << 30) + 1);
  EXPECT_EQ(t->encode("ab"), (std::vector<int32_t>{0, 1 << 30}));
  EXPECT_EQ(t->decode(std::vector<int32_t>{1 << 30, 0}), "b a");
  test::expect_error([&] { t->decode(std::vector<int32_t>{1}); }, {"token id 1 is not in the vocabulary"});
  test::expect_error([] { parse_hf_tokenizer(bpe(R"({"a":1073741825})"), "t.json"); },
                     {"model.vocab gives 'a' the id 1073741825"});
}

// Metaspace with an empty replacement: the decoder's replace_all("", ...) never
// advanced and grew its output until memory ran out (libFuzzer timeout).
TEST(TokenizerFuzzRegression, EmptyMetaspaceReplacement) {
  test::expect_error(
      [] { parse_hf_tokenizer(bpe(R"({"a":0})", R"(,"decoder":{"type":"Metaspace","replacement":""})"), "t.json"); },
      {"t.json: ", "Metaspace decoder replacement is empty"});
  test::expect_error(
      [] {
        parse_hf_tokenizer(bpe(R"({"a":0})", R"(,"pre_tokenizer":{"type":"Metaspace","replacement":""})"), "t.json");
      },
      {"t.json: ", "Metaspace pre_tokenizer replacement is empty"});
}

// A Split regex with \C (one byte, even inside a character): the next search
// started mid-character, undefined behaviour under PCRE2_NO_UTF_CHECK. Refused now.
TEST(TokenizerFuzzRegression, RegexSingleByteEscapeRefused) {
  const std::string split = R"(,"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\C"},"behavior":"Isolated"})";
  test::expect_error([&] { parse_hf_tokenizer(bpe(R"({"a":0})", split), "t.json"); },
                     {"t.json: ", "cannot compile regex '\\C'"});
}

// A normalizer of 200000 nested arrays: copying it recursed once per level and
// overflowed the stack.
TEST(TokenizerFuzzRegression, NestedTooDeep) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  test::expect_error([&] { parse_hf_tokenizer(bpe("{}", R"(,"normalizer":)" + deep), "t.json"); },
                     {"t.json: ", "nested deeper than 512 levels"});
  const std::string path = test::temp_dir("tok-fuzz-deep") + "/tokenizer.json";
  test::write_all(path, bpe("{}", R"(,"decoder":)" + deep));
  test::expect_error([&] { load_tokenizer(path); }, {path + ": ", "nested deeper than 512 levels"});
}

// The in-memory entry points the fuzz targets use read as the file readers do.
TEST(TokenizerFuzzRegression, InMemoryEntryPointsMatchTheFileReaders) {
  const std::string tok512 = test::data_path("models/stories260K/tok512.bin");
  const SpmVocab a = read_llama2c_vocab(tok512), b = parse_llama2c_vocab(test::read_all(tok512), "tok512.bin");
  EXPECT_EQ(a.pieces, b.pieces);
  EXPECT_EQ(a.scores, b.scores);
  EXPECT_EQ(a.types, b.types);
  const std::string dir = test::source_path("tests/fixtures/tokenizer/llama3_style");
  const auto from_file = load_hf_tokenizer(dir + "/tokenizer.json");
  const auto from_text = parse_hf_tokenizer(test::read_all(dir + "/tokenizer.json"), "tokenizer.json",
                                            test::read_all(dir + "/tokenizer_config.json"));
  const std::string text = "Hello world! 123 caf\xC3\xA9";
  EXPECT_EQ(from_file->encode(text), from_text->encode(text));
  EXPECT_EQ(from_file->bos_id(), from_text->bos_id());
  EXPECT_EQ(from_file->eos_id(), from_text->eos_id());
}

}  // namespace
}  // namespace mlar
