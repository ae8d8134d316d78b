// save_hf writes what transformers reads; loading the written directory back must
// tokenize the dev text exactly as the original tokenizer does.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "tokenizer/load.h"
#include "tokenizer_test_util.h"
#include "util/utf8.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

const std::string& dev_text() {
  static const std::string t = read_utf8_file(test::data_path("text/tinystories-dev.txt"));
  return t;
}

void expect_round_trip(const Tokenizer& original, const std::string& dir, const std::string& what) {
  original.save_hf(dir);
  auto back = load_tokenizer(dir);
  const auto a = original.encode(dev_text());
  const auto b = back->encode(dev_text());
  EXPECT_EQ(test::first_difference(a, b), -1) << what << ": " << a.size() << " vs " << b.size() << " ids";
  EXPECT_EQ(back->decode(b), original.decode(a)) << what;
  EXPECT_EQ(back->bos_id(), original.bos_id()) << what;
  EXPECT_EQ(back->eos_id(), original.eos_id()) << what;
  EXPECT_EQ(back->vocab_size(), original.vocab_size()) << what;
  for (const char* s : {"", " ", "  Hello  world  ", "a\n\n b", "caf\xC3\xA9 \xF0\x9F\x98\x80 123", "x"})
    EXPECT_EQ(back->encode(s), original.encode(s)) << what << ": '" << s << "'";
}

TEST(SaveHf, Llama2cBinRoundTrips) {
  auto t = load_tokenizer(test::data_path("models/stories260K/tok512.bin"));
  const std::string dir = test::temp_dir("hf-llama2c");
  expect_round_trip(*t, dir, "tok512.bin");
  EXPECT_TRUE(fs::exists(fs::path(dir) / "tokenizer_config.json"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "special_tokens_map.json"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "tokenizer.model"));
  EXPECT_EQ(load_tokenizer(dir)->kind(), "hf-bpe");
}

TEST(SaveHf, SentencePieceModelRoundTripsAndKeepsTheModel) {
  const std::string model = test::data_path("models/stories260K/tok512.model");
  auto t = load_tokenizer(model);
  const std::string dir = test::temp_dir("hf-spm");
  expect_round_trip(*t, dir, "tok512.model");
  EXPECT_EQ(test::read_all((fs::path(dir) / "tokenizer.model").string()), test::read_all(model));
  // Without tokenizer.json the directory loads through tokenizer.model.
  fs::remove(fs::path(dir) / "tokenizer.json");
  auto back = load_tokenizer(dir);
  EXPECT_EQ(back->kind(), "sentencepiece");
  EXPECT_EQ(back->encode(dev_text()), t->encode(dev_text()));
}

TEST(SaveHf, SpmVocabRoundTrips) {
  auto t = make_spm_vocab_tokenizer(read_llama2c_vocab(test::data_path("models/stories260K/tok512.bin")), "vocab");
  expect_round_trip(*t, test::temp_dir("hf-vocab"), "SpmVocab");
}

// The written tokenizer.json (HF BPE with ranked merges and the whitespace normalizer)
// reproduces SentencePiece on every text file, not only the dev text.
TEST(SaveHf, WrittenTokenizerJsonMatchesSentencePieceOnAllTexts) {
  auto model = load_tokenizer(test::data_path("models/stories260K/tok512.model"));
  const std::string dir = test::temp_dir("hf-all");
  load_tokenizer(test::data_path("models/stories260K/tok512.bin"))->save_hf(dir);
  auto hf = load_tokenizer(dir);
  for (const char* rel : {"text/tinystories-calib.txt", "text/wikitext2-test.raw"}) {
    const std::string text = read_utf8_file(test::data_path(rel));
    const auto a = model->encode(text);
    const auto b = hf->encode(text);
    EXPECT_EQ(test::first_difference(a, b), -1) << rel << ": " << a.size() << " vs " << b.size() << " ids";
  }
}

TEST(SaveHf, LlamaFormFiles) {
  auto t = load_tokenizer(test::data_path("models/stories260K/tok512.bin"));
  const fs::path dir = test::temp_dir("hf-files");
  t->save_hf(dir);
  const auto tj = nlohmann::json::parse(test::read_all((dir / "tokenizer.json").string()));
  EXPECT_EQ(tj["model"]["type"], "BPE");
  EXPECT_EQ(tj["model"]["byte_fallback"], true);
  EXPECT_EQ(tj["model"]["unk_token"], "<unk>");
  EXPECT_EQ(tj["model"]["vocab"].size(), 512u);
  EXPECT_EQ(tj["model"]["vocab"]["<0x0A>"], 13);
  EXPECT_EQ(tj["model"]["vocab"]["\xE2\x96\x81"
                                 "the"],
            265);
  ASSERT_FALSE(tj["model"]["merges"].empty());
  // The best-scored piece (id 259, "▁t", score 0) comes first.
  EXPECT_EQ(tj["model"]["merges"][0], "\xE2\x96\x81 t");
  EXPECT_EQ(tj["decoder"]["type"], "Sequence");
  EXPECT_EQ(tj["added_tokens"].size(), 3u);
  const auto cfg = nlohmann::json::parse(test::read_all((dir / "tokenizer_config.json").string()));
  // tok512 collapses whitespace: the generic class, which transformers 5 loads verbatim.
  EXPECT_EQ(cfg["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(cfg["bos_token"], "<s>");
  EXPECT_EQ(cfg["eos_token"], "</s>");
  EXPECT_EQ(cfg["unk_token"], "<unk>");
  EXPECT_EQ(cfg["add_bos_token"], true);
  EXPECT_EQ(cfg["add_eos_token"], false);
  const auto stm = nlohmann::json::parse(test::read_all((dir / "special_tokens_map.json").string()));
  EXPECT_EQ(stm["bos_token"]["content"], "<s>");
}

}  // namespace
}  // namespace mlar
