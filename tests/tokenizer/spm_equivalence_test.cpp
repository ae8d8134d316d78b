// The SentencePiece-BPE encoder over llama2.c's tok512.bin must give exactly the ids
// libsentencepiece gives with tok512.model, on whole text files (the perplexity
// protocol tokenizes a whole file without BOS).
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "common/test_data.h"
#include "tokenizer/load.h"
#include "tokenizer_test_util.h"
#include "util/utf8.h"

namespace mlar {
namespace {

struct Pair {
  std::shared_ptr<const Tokenizer> bin, model, vocab;
};

const Pair& tokenizers() {
  static const Pair p = [] {
    Pair r;
    r.bin = load_tokenizer(test::data_path("models/stories260K/tok512.bin"));
    r.model = load_tokenizer(test::data_path("models/stories260K/tok512.model"));
    r.vocab =
        make_spm_vocab_tokenizer(read_llama2c_vocab(test::data_path("models/stories260K/tok512.bin")), "tok512.bin");
    return r;
  }();
  return p;
}

void expect_same_ids(const std::string& text, const std::string& what) {
  const auto& t = tokenizers();
  const auto ref = t.model->encode(text);
  const auto ours = t.bin->encode(text);
  const long d = test::first_difference(ref, ours);
  EXPECT_EQ(d, -1) << what << ": sentencepiece " << ref.size() << " ids, ours " << ours.size()
                   << ", first difference at " << d;
  EXPECT_EQ(t.vocab->encode(text), ours) << what;
}

class WholeFile : public ::testing::TestWithParam<const char*> {};

TEST_P(WholeFile, Tok512BinMatchesSentencePiece) {
  const std::string text = read_utf8_file(test::data_path(GetParam()));
  const auto& t = tokenizers();
  auto t0 = std::chrono::steady_clock::now();
  const auto ref = t.model->encode(text);
  auto t1 = std::chrono::steady_clock::now();
  const auto ours = t.bin->encode(text);
  auto t2 = std::chrono::steady_clock::now();
  const long d = test::first_difference(ref, ours);
  ASSERT_EQ(d, -1) << GetParam() << ": sentencepiece " << ref.size() << " ids, ours " << ours.size()
                   << ", first difference at " << d;
  EXPECT_EQ(t.vocab->encode(text), ref);
  std::printf("[ info ] %s: %zu bytes -> %zu ids (sentencepiece %.0f ms, ours %.0f ms)\n", GetParam(), text.size(),
              ref.size(), std::chrono::duration<double, std::milli>(t1 - t0).count(),
              std::chrono::duration<double, std::milli>(t2 - t1).count());
  // Decoding gives what SentencePiece's decoder gives.
  EXPECT_EQ(t.bin->decode(ours), t.model->decode(ref));
}

INSTANTIATE_TEST_SUITE_P(Texts, WholeFile,
                         ::testing::Values("text/tinystories-dev.txt", "text/tinystories-calib.txt",
                                           "text/wikitext2-test.raw"));

TEST(SpmVocabTokenizer, EdgeCasesMatchSentencePiece) {
  const std::vector<std::string> cases = {
      "",
      " ",
      "   ",
      "a",
      " a",
      "a ",
      "  a  b  ",
      "Hello world",
      "Hello  world",
      "\n",
      "\n\n",
      "a\nb",
      "a \n b",
      " \n ",
      "line one\n\n  line two  \n",
      "\t tab\tand spaces",
      "numbers 12345 and 3.14159",
      "caf\xC3\xA9 na\xC3\xAFve \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D!",
      "Once upon a time, there was a little girl named Lily.",
      "\"Wow!\" said Tom. 'It's fun,' she replied...",
      "<s> </s> <unk> <0x41>",
      "\xE2\x96\x81"
      "already"
      "\xE2\x96\x81"
      "escaped",
      "trailing spaces   ",
      "\r\nwindows\r\n",
  };
  for (const auto& c : cases) expect_same_ids(c, "'" + c + "'");
}

TEST(SpmVocabTokenizer, InvalidUtf8BecomesReplacementLikeSentencePiece) {
  expect_same_ids(std::string("ab\xFF"
                              "cd\xC3"),
                  "invalid UTF-8");
  expect_same_ids(std::string("\xE2\x82"), "truncated sequence");
}

TEST(SpmVocabTokenizer, RandomSnippetsMatchSentencePiece) {
  const std::string text = read_utf8_file(test::data_path("text/wikitext2-test.raw"));
  std::mt19937 rng(1234);
  for (int k = 0; k < 300; ++k) {
    size_t b = rng() % text.size();
    size_t n = rng() % 200;
    while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
    std::string s = text.substr(b, n);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0x80)) s.pop_back();
    expect_same_ids(s, "snippet at " + std::to_string(b));
  }
}

TEST(SpmVocabTokenizer, DecodeMatchesSentencePiece) {
  const auto& t = tokenizers();
  std::mt19937 rng(99);
  const auto n = static_cast<uint32_t>(t.bin->vocab_size());
  for (int k = 0; k < 500; ++k) {
    std::vector<int32_t> ids(rng() % 12);
    // Not 0 (<unk>): tok512.model spells its unknown surface " \\342\\201\\207 " literally
    // (llama2.c passed it escaped); tok512.bin cannot carry it and decodes " \u2047 ".
    for (auto& id : ids) id = static_cast<int32_t>(1 + rng() % (n - 1));
    if (k % 3 == 0 && !ids.empty()) ids[0] = static_cast<int32_t>(3 + rng() % 256);  // byte first
    EXPECT_EQ(t.bin->decode(ids), t.model->decode(ids)) << "case " << k;
  }
}

TEST(SpmVocabTokenizer, DecodeRoundTripsText) {
  const auto& t = tokenizers();
  for (const char* rel : {"text/tinystories-dev.txt", "text/wikitext2-test.raw"}) {
    const std::string text = read_utf8_file(test::data_path(rel));
    // Whitespace runs collapse in tok512's normalizer; compare with the normalized text.
    std::string expect;
    for (size_t i = 0; i < text.size(); ++i)
      if (!(text[i] == ' ' && (expect.empty() || expect.back() == ' '))) expect += text[i];
    while (!expect.empty() && expect.back() == ' ') expect.pop_back();
    EXPECT_EQ(t.bin->decode(t.bin->encode(text)), expect) << rel;
  }
  EXPECT_EQ(t.bin->decode(t.bin->encode("Hello, world! caf\xC3\xA9 \xF0\x9F\x98\x80")),
            "Hello, world! caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST(SpmVocabTokenizer, Metadata) {
  const auto& t = tokenizers();
  EXPECT_EQ(t.bin->vocab_size(), 512);
  EXPECT_EQ(t.bin->bos_id(), 1);
  EXPECT_EQ(t.bin->eos_id(), 2);
  EXPECT_EQ(t.bin->kind(), "llama2c");
  EXPECT_EQ(t.model->kind(), "sentencepiece");
  EXPECT_EQ(t.vocab->kind(), "gguf");
  EXPECT_EQ(t.model->bos_id(), 1);
  EXPECT_EQ(t.model->eos_id(), 2);
  EXPECT_EQ(t.bin->decode(std::vector<int32_t>{1, 2}), "");
}

}  // namespace
}  // namespace mlar
