// Malformed tokenizer files give one clear mlar::Error line naming the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/test_data.h"
#include "tokenizer/load.h"
#include "tokenizer_test_util.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

std::string tok512_bin() { return test::read_all(test::data_path("models/stories260K/tok512.bin")); }

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = test::temp_dir("bad") + "/" + name;
  test::write_all(path, bytes);
  return path;
}

TEST(Llama2cBadInput, TruncatedInsideAToken) {
  const std::string bytes = tok512_bin();
  const std::string path = write_temp("tok.bin", bytes.substr(0, bytes.size() - 3));
  test::expect_error([&] { load_tokenizer(path); }, {path, "truncated", "token 511"});
}

TEST(Llama2cBadInput, TruncatedInsideATokenHeader) {
  const std::string bytes = tok512_bin();
  // Token 0 starts at offset 4: score (4 bytes), length (4 bytes), "<unk>".
  const std::string path = write_temp("tok.bin", bytes.substr(0, 4 + 13 + 6));
  test::expect_error([&] { load_tokenizer(path); }, {path, "truncated", "token 1"});
}

TEST(Llama2cBadInput, NegativeLength) {
  std::string bytes = tok512_bin();
  const int32_t neg = -5;
  std::memcpy(bytes.data() + 8, &neg, 4);  // length of token 0
  const std::string path = write_temp("tok.bin", bytes);
  test::expect_error([&] { load_tokenizer(path); }, {path, "token 0", "negative length -5"});
}

TEST(Llama2cBadInput, LengthPastEndOfFile) {
  std::string bytes = tok512_bin();
  const int32_t huge = 1 << 24;
  std::memcpy(bytes.data() + 8, &huge, 4);
  const std::string path = write_temp("tok.bin", bytes);
  test::expect_error([&] { load_tokenizer(path); }, {path, "token 0", "past the end of the file"});
}

TEST(Llama2cBadInput, LengthAboveMaxTokenLength) {
  std::string bytes = tok512_bin();
  const int32_t max_len = 2;  // "<unk>" is 5 bytes
  std::memcpy(bytes.data(), &max_len, 4);
  const std::string path = write_temp("tok.bin", bytes);
  test::expect_error([&] { load_tokenizer(path); }, {path, "max_token_length 2"});
}

TEST(Llama2cBadInput, EmptyAndHeaderOnly) {
  const std::string empty = write_temp("empty.bin", "");
  test::expect_error([&] { load_tokenizer(empty); }, {empty, "too short"});
  const std::string header = write_temp("header.bin", std::string("\x07\0\0\0", 4));
  test::expect_error([&] { load_tokenizer(header); }, {header, "no tokens"});
}

TEST(Llama2cBadInput, VocabularySizeChecked) {
  const std::string path = test::data_path("models/stories260K/tok512.bin");
  EXPECT_EQ(load_llama2c_tokenizer(path, 512)->vocab_size(), 512);
  test::expect_error([&] { load_llama2c_tokenizer(path, 32000); }, {path, "512 tokens", "32000"});
  test::expect_error([&] { load_llama2c_tokenizer(path, 100); }, {path, "more than the expected 100"});
}

TEST(LoadTokenizerBadInput, MissingPath) {
  const std::string path = test::temp_dir("missing") + "/nope.bin";
  test::expect_error([&] { load_tokenizer(path); }, {path, "no such"});
}

TEST(LoadTokenizerBadInput, UnknownExtension) {
  const std::string path = write_temp("vocab.txt", "hello");
  test::expect_error([&] { load_tokenizer(path); }, {path, "unknown tokenizer format"});
}

TEST(LoadTokenizerBadInput, DirectoryWithoutTokenizer) {
  const std::string dir = test::temp_dir("empty-dir");
  test::expect_error([&] { load_tokenizer(dir); }, {dir, "neither tokenizer.json nor tokenizer.model"});
}

TEST(LoadTokenizerBadInput, GarbageSentencePieceModel) {
  const std::string path =
      write_temp("tok.model", "this is not a protobuf \xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
  test::expect_error([&] { load_tokenizer(path); }, {path, "SentencePiece"});
}

TEST(HfBadInput, NotJson) {
  const std::string path = write_temp("tokenizer.json", "{\"model\": [1, 2,");
  test::expect_error([&] { load_tokenizer(path); }, {path, "not valid JSON"});
}

TEST(HfBadInput, UnsupportedModelTypes) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    const std::string path =
        write_temp("tokenizer.json", std::string(R"({"model": {"type": ")") + type + R"(", "vocab": {}}})");
    test::expect_error([&] { load_tokenizer(path); }, {path, "unsupported tokenizer model type", type});
  }
}

std::string tiny_bpe(const std::string& normalizer, const std::string& pre, const std::string& decoder,
                     const std::string& merges = R"(["a b"])") {
  return R"({"normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre + R"(, "decoder": )" + decoder +
         R"(, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": )" + merges + "}}";
}

TEST(HfBadInput, UnsupportedPipelineParts) {
  {
    const std::string path = write_temp("tokenizer.json", tiny_bpe("null", R"({"type": "BertPreTokenizer"})", "null"));
    test::expect_error([&] { load_tokenizer(path); }, {path, "unsupported pre_tokenizer type 'BertPreTokenizer'"});
  }
  {
    const std::string path = write_temp("tokenizer.json", tiny_bpe(R"({"type": "NFKC"})", "null", "null"));
    test::expect_error([&] { load_tokenizer(path); }, {path, "unsupported normalizer type 'NFKC'"});
  }
  {
    const std::string path = write_temp("tokenizer.json", tiny_bpe("null", "null", R"({"type": "WordPiece"})"));
    test::expect_error([&] { load_tokenizer(path); }, {path, "unsupported decoder type 'WordPiece'"});
  }
  {
    const std::string path = write_temp(
        "tokenizer.json",
        tiny_bpe("null", R"({"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"})", "null"));
    test::expect_error([&] { load_tokenizer(path); }, {path, "cannot compile regex"});
  }
}

TEST(HfBadInput, BadMerges) {
  {
    const std::string path = write_temp("tokenizer.json", tiny_bpe("null", "null", "null", R"(["a c"])"));
    test::expect_error([&] { load_tokenizer(path); }, {path, "merge 0", "missing from the vocabulary"});
  }
  {
    const std::string path = write_temp("tokenizer.json", tiny_bpe("null", "null", "null", R"(["b a"])"));
    test::expect_error([&] { load_tokenizer(path); }, {path, "makes 'ba'"});
  }
  {
    const std::string path = write_temp("tokenizer.json", tiny_bpe("null", "null", "null", R"(["a b c"])"));
    test::expect_error([&] { load_tokenizer(path); }, {path, "merge 0"});
  }
}

TEST(HfBadInput, MissingModelAndWrongTypes) {
  {
    const std::string path = write_temp("tokenizer.json", R"({"version": "1.0"})");
    test::expect_error([&] { load_tokenizer(path); }, {path, "no \"model\""});
  }
  {
    const std::string path = write_temp("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": "zero"}}})");
    test::expect_error([&] { load_tokenizer(path); }, {path, "model.vocab gives 'a' the id"});
  }
}

TEST(HfBadInput, BadTokenizerConfig) {
  const std::string dir = test::temp_dir("bad-config");
  test::write_all(dir + "/tokenizer.json", tiny_bpe("null", "null", "null"));
  test::write_all(dir + "/tokenizer_config.json", "{ not json");
  test::expect_error([&] { load_tokenizer(dir); }, {"tokenizer_config.json", "not valid JSON"});
  test::write_all(dir + "/tokenizer_config.json", R"({"bos_token": "<s>"})");
  test::expect_error([&] { load_tokenizer(dir); }, {"tokenizer_config.json", "bos_token '<s>' is not a token"});
}

TEST(DecodeBadInput, IdOutOfRange) {
  const std::string bin = test::data_path("models/stories260K/tok512.bin");
  const std::string model = test::data_path("models/stories260K/tok512.model");
  test::expect_error([&] { load_tokenizer(bin)->decode(std::vector<int32_t>{5, 512}); }, {bin, "token id 512"});
  test::expect_error([&] { load_tokenizer(model)->decode(std::vector<int32_t>{-1}); }, {model, "token id -1"});
  const std::string dir = test::temp_dir("tiny");
  test::write_all(dir + "/tokenizer.json", tiny_bpe("null", "null", "null"));
  test::expect_error([&] { load_tokenizer(dir)->decode(std::vector<int32_t>{3}); }, {"tokenizer.json", "token id 3"});
}

}  // namespace
}  // namespace mlar
