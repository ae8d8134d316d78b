// HF tokenizer.json fixtures (tests/fixtures/tokenizer/<name>/), made with the
// `tokenizers` library by make_fixtures.py: our encoder must give the library's ids
// exactly, and our decoder the library's text.
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

const char* const kFixtures[] = {"llama3_style",      "gpt2_style",        "bytelevel_prefix_space",
                                 "split_behaviors_a", "split_behaviors_b", "whitespace_split",
                                 "llama2_style",      "llama2_metaspace",  "metaspace_split"};

std::string fixture_dir(const std::string& name) { return test::source_path("tests/fixtures/tokenizer/" + name); }

nlohmann::json reference(const std::string& name) {
  return nlohmann::json::parse(test::read_all(fixture_dir(name) + "/reference.json"));
}

std::string fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids) h = (h ^ static_cast<uint64_t>(id)) * 0x100000001b3ull;
  return fmt::format("{:016x}", h);
}

class HfFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(HfFixture, EncodesAndDecodesAsTokenizersDoes) {
  const std::string name = GetParam();
  auto tok = load_tokenizer(fixture_dir(name));
  EXPECT_EQ(tok->kind(), "hf-bpe");
  const auto ref = reference(name);
  EXPECT_EQ(tok->vocab_size(), ref["vocab_size"].get<int64_t>());
  for (const auto& r : ref["texts"]) {
    const std::string text = r["text"].get<std::string>();
    const auto expect = r["ids"].get<std::vector<int32_t>>();
    const auto ids = tok->encode(text);
    EXPECT_EQ(ids, expect) << name << ": '" << text.substr(0, 80) << "'";
    EXPECT_EQ(tok->decode(expect), r["decoded"].get<std::string>()) << name << ": '" << text.substr(0, 80) << "'";
  }
}

TEST_P(HfFixture, WholeDevTextMatches) {
  const std::string name = GetParam();
  auto tok = load_tokenizer(fixture_dir(name));
  const auto ref = reference(name)["dev_full"];
  const std::string text = read_utf8_file(test::data_path("text/tinystories-dev.txt"));
  const auto ids = tok->encode(text);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), ref["n_ids"].get<int64_t>()) << name;
  EXPECT_EQ(fnv1a64(ids), ref["fnv1a64"].get<std::string>()) << name;
  EXPECT_EQ(tok->decode(ids) == text, ref["decode_is_identity"].get<bool>()) << name;
}

// save_hf copies the files; the copy tokenizes the same.
TEST_P(HfFixture, SaveHfRoundTrips) {
  const std::string name = GetParam();
  auto tok = load_tokenizer(fixture_dir(name));
  const std::string dir = test::temp_dir("hf-fixture");
  tok->save_hf(dir);
  EXPECT_EQ(test::read_all(dir + "/tokenizer.json"), test::read_all(fixture_dir(name) + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "tokenizer_config.json"));
  auto back = load_tokenizer(dir);
  const std::string text = read_utf8_file(test::data_path("text/tinystories-dev.txt"));
  EXPECT_EQ(back->encode(text), tok->encode(text)) << name;
  EXPECT_EQ(back->bos_id(), tok->bos_id()) << name;
  EXPECT_EQ(back->eos_id(), tok->eos_id()) << name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfFixture, ::testing::ValuesIn(kFixtures));

TEST(HfTokenizer, ByteLevelIsLossless) {
  for (const char* name : {"llama3_style", "gpt2_style"}) {
    auto tok = load_tokenizer(fixture_dir(name));
    for (const std::string t : {"Hello world", "  spaces  and\ttabs\n\n",
                                "caf\xC3\xA9 \xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC 12345", "\r\n",
                                "x\xE2\x80\x8D"
                                "y",
                                ""})
      EXPECT_EQ(tok->decode(tok->encode(t)), t) << name;
  }
}

TEST(HfTokenizer, SpecialIdsFromConfigTemplateOrNames) {
  {  // tokenizer_config.json: bos as a string, eos as an AddedToken object
    auto tok = load_tokenizer(fixture_dir("llama3_style"));
    EXPECT_EQ(tok->decode(tok->encode("<|begin_of_text|>")), "");
    EXPECT_EQ(tok->encode("<|begin_of_text|>"), std::vector<int32_t>{tok->bos_id()});
    EXPECT_EQ(tok->encode("<|end_of_text|>"), std::vector<int32_t>{tok->eos_id()});
  }
  {  // no config: the TemplateProcessing's leading special token, then the usual names
    auto tok = load_tokenizer(fixture_dir("llama2_style"));
    EXPECT_EQ(tok->bos_id(), 1);
    EXPECT_EQ(tok->eos_id(), 2);
  }
}

}  // namespace
}  // namespace mlar
