// Byte-level BPE tokenizers in GGUF (tokenizer.ggml.model "gpt2"): the deepseek2
// export writes llama.cpp's vocabulary (tokens, types, merges, pre-tokenizer name,
// special ids), both GGUF readers rebuild the tokenizer from it, and the rebuilt one
// encodes and decodes as the HF tokenizer (the `tokenizers` library's own ids in the
// fixtures' reference.json, and this toolkit's HF tokenizer on longer text).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "convert/expect_error.h"
#include "export_models.h"
#include "io/deepseek_export.h"
#include "io/gguf.h"
#include "io/gguf_bpe_vocab.h"
#include "io/gguf_writer.h"
#include "tokenizer/load.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using test::DsKnobs;

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/tokenizer/" + name); }

std::string export_gguf(const Model& m, const std::string& tag, std::vector<std::string>* notes = nullptr) {
  const std::string path = test::temp_dir(tag) + "/model.gguf";
  auto n = export_deepseek(m, DeepseekFormat::GgufDeepseek2, path, {});
  if (notes) *notes = n;
  return path;
}

// A random deepseek2-shaped model of `rows` vocabulary rows carrying `tok`.
Model with_tokenizer(std::shared_ptr<const Tokenizer> tok, int64_t rows) {
  DsKnobs k;
  k.vocab = rows;
  Model m = test::deepseek_like(k);
  m.tokenizer = std::move(tok);
  return m;
}

// Texts that stress a byte-level pre-tokenizer, plus slices of the shared text.
std::vector<std::string> probe_texts() {
  std::vector<std::string> t = {
      "Hello world",
      "Once upon a time, there was a little girl named Lily.",
      "   leading, trailing and   inner   runs   \t\t tabs \n\n\n newlines \r\n  ",
      "Digits 0 7 42 333 4444 1234567 3.14159 2024-01-01 1,000,000 x²",
      "Contractions: I'm, you're, he's, we'll, they've, I'd, can't, DON'T, It'S, I'VE",
      "Unicode: café naïve Ångström Καλημέρα Привет 日本語のテキスト 中文 한국어 😀 👍🏽 👨\u200d👩\u200d👧 🇫🇷",
      "Special in text: <|begin_of_text|>hi<|end_of_text|> and <|end_of_text|><|begin_of_text|>",
      " ",
      "\n",
      "",
  };
  const std::string dev = read_all(test::data_path("text/tinystories-dev.txt"));
  const std::string wiki = read_all(test::data_path("text/wikitext2-test.raw"));
  t.push_back(dev.substr(0, 30000));
  t.push_back(wiki.substr(0, 30000));
  return t;
}

void expect_same_tokenisation(const Tokenizer& hf, const Tokenizer& back) {
  for (const std::string& text : probe_texts()) {
    SCOPED_TRACE(text.substr(0, 60));
    const auto a = hf.encode(text), b = back.encode(text);
    EXPECT_EQ(a, b);
    EXPECT_EQ(back.decode(b), hf.decode(a));
    if (text.find("<|") == std::string::npos) {
      EXPECT_EQ(back.decode(b), text);  // specials decode to nothing
    }
  }
}

// The fixtures: Llama 3's pre-tokenizer (llama-bpe) and GPT-2's (gpt-2).
TEST(GgufBpeExport, FixturesWriteLlamaCppVocabularyAndRoundTrip) {
  struct Case {
    const char* name;
    const char* pre;
  };
  for (const Case& c : {Case{"llama3_style", "llama-bpe"}, Case{"gpt2_style", "gpt-2"}}) {
    SCOPED_TRACE(c.name);
    const auto hf = load_tokenizer(fixture(c.name));
    const Model m = with_tokenizer(hf, 600);  // more rows than the 512 tokens: the list is padded
    std::vector<std::string> notes;
    const std::string path = export_gguf(m, std::string("bpe-") + c.name, &notes);
    for (const auto& n : notes) EXPECT_EQ(n.find("tokenizer"), std::string::npos) << n;

    const GgufFile f(path);
    const GgufMetadata& md = f.metadata();
    EXPECT_EQ(md.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(md.get_string("tokenizer.ggml.pre"), c.pre);
    const auto tokens = md.get_string_array("tokenizer.ggml.tokens");
    const auto types = md.get_int_array("tokenizer.ggml.token_type");
    ASSERT_EQ(tokens.size(), 600u);
    ASSERT_EQ(types.size(), 600u);
    const nlohmann::json j = nlohmann::json::parse(read_all(fixture(c.name) + "/tokenizer.json"));
    EXPECT_EQ(tokens[0], "<|begin_of_text|>");
    EXPECT_EQ(types[0], gguf_tok::kControl);  // special added tokens
    EXPECT_EQ(types[1], gguf_tok::kControl);
    for (const auto& [piece, id] : j["model"]["vocab"].items()) {
      const size_t u = id.get<size_t>();
      EXPECT_EQ(tokens[u], piece);
      if (u > 1) {
        EXPECT_EQ(types[u], gguf_tok::kNormal) << piece;
      }
    }
    EXPECT_EQ(tokens[599], "[PAD599]");
    EXPECT_EQ(types[599], gguf_tok::kUnused);
    const auto merges = md.get_string_array("tokenizer.ggml.merges");
    ASSERT_EQ(merges.size(), j["model"]["merges"].size());
    for (size_t k = 0; k < merges.size(); ++k) {
      const nlohmann::json& mj = j["model"]["merges"][k];
      EXPECT_EQ(merges[k], mj.is_string() ? mj.get<std::string>()
                                          : mj[0].get<std::string>() + " " + mj[1].get<std::string>());
    }
    EXPECT_EQ(md.get_int("tokenizer.ggml.bos_token_id"), hf->bos_id());
    EXPECT_EQ(md.get_int("tokenizer.ggml.eos_token_id"), hf->eos_id());
    // llama3_style's post-processor puts <|begin_of_text|> first; gpt2_style has none.
    EXPECT_EQ(md.get_bool("tokenizer.ggml.add_bos_token"), std::string(c.name) == "llama3_style");
    EXPECT_FALSE(md.get_bool("tokenizer.ggml.add_eos_token"));

    const Model back = load_model(path);
    ASSERT_TRUE(back.tokenizer);
    EXPECT_EQ(back.tokenizer->bos_id(), hf->bos_id());
    EXPECT_EQ(back.tokenizer->eos_id(), hf->eos_id());
    // The `tokenizers` library's own ids and decodings.
    const nlohmann::json ref = nlohmann::json::parse(read_all(fixture(c.name) + "/reference.json"));
    for (const auto& r : ref["texts"]) {
      const std::string text = r["text"].get<std::string>();
      SCOPED_TRACE(text.substr(0, 60));
      const auto ids = back.tokenizer->encode(text);
      EXPECT_EQ(ids, r["ids"].get<std::vector<int32_t>>());
      EXPECT_EQ(back.tokenizer->decode(ids), r["decoded"].get<std::string>());
    }
    expect_same_tokenisation(*hf, *back.tokenizer);
    test::expect_same_logits(m, back);

    // The rebuilt tokenizer saves as HF files and exports again to the same vocabulary.
    const std::string again = export_gguf(with_tokenizer(back.tokenizer, 600), std::string("bpe-again-") + c.name);
    const GgufFile f2(again);
    const GgufMetadata& md2 = f2.metadata();
    for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                            "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token"})
      EXPECT_TRUE(md2.at(key) == md.at(key)) << key;
  }
}

// Qwen2's pre-tokenizer (single digits) on the llama3_style vocabulary: written as
// "qwen2" and read back with that regex.
TEST(GgufBpeExport, Qwen2PreTokenizerRoundTrips) {
  nlohmann::json j = nlohmann::json::parse(read_all(fixture("llama3_style") + "/tokenizer.json"));
  std::string& re = j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].get_ref<std::string&>();
  const size_t at = re.find("\\p{N}{1,3}");
  ASSERT_NE(at, std::string::npos);
  re.replace(at, 10, "\\p{N}");
  j["model"]["ignore_merges"] = false;  // as Qwen2's tokenizer.json
  j["normalizer"] = {{"type", "NFC"}};
  const std::string dir = test::temp_dir("bpe-qwen2");
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  const auto hf = load_tokenizer(dir + "/tokenizer.json");
  EXPECT_EQ(hf->encode("1234").size(), 4u);
  std::vector<std::string> notes;
  const std::string path = export_gguf(with_tokenizer(hf, 512), "bpe-qwen2-out", &notes);
  for (const auto& n : notes) EXPECT_EQ(n.find("tokeni"), std::string::npos) << n;
  const GgufFile f(path);
  EXPECT_EQ(f.metadata().get_string("tokenizer.ggml.pre"), "qwen2");
  const Model back = load_model(path);
  ASSERT_TRUE(back.tokenizer);
  expect_same_tokenisation(*hf, *back.tokenizer);
}

// The shared llama3ish model's tokenizer (Llama 3 form, 4096 tokens).
TEST(GgufBpeExport, Llama3ishTokenizerRoundTrips) {
  const auto hf = load_tokenizer(test::data_path("models/llama3ish"));
  std::vector<std::string> notes;
  const std::string path = export_gguf(with_tokenizer(hf, 4096), "bpe-llama3ish", &notes);
  for (const auto& n : notes) EXPECT_EQ(n.find("tokeni"), std::string::npos) << n;
  const GgufFile f(path);
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(md.get_string("tokenizer.ggml.pre"), "llama-bpe");
  EXPECT_EQ(md.get_string_array("tokenizer.ggml.tokens").size(), 4096u);
  EXPECT_EQ(md.get_int("tokenizer.ggml.bos_token_id"), 0);
  EXPECT_EQ(md.get_int("tokenizer.ggml.eos_token_id"), 1);
  EXPECT_FALSE(md.get_bool("tokenizer.ggml.add_bos_token"));  // its post-processor adds nothing
  const Model back = load_model(path);
  ASSERT_TRUE(back.tokenizer);
  expect_same_tokenisation(*hf, *back.tokenizer);
  const std::string dev = read_all(test::data_path("text/tinystories-dev.txt"));
  const auto a = hf->encode(dev), b = back.tokenizer->encode(dev);
  EXPECT_GT(a.size(), 30000u);
  EXPECT_EQ(a, b);
  EXPECT_EQ(back.tokenizer->decode(b), dev);
}

// llama.cpp fixes ignore_merges by the pre-tokenizer (gpt-2: merges always applied).
// A tokenizer.json that skips merges for whole-word tokens and holds a token the merges
// do not make is still written, with a note; the GGUF reader follows llama.cpp.
TEST(GgufBpeExport, IgnoreMergesMismatchIsNoted) {
  nlohmann::json j = nlohmann::json::parse(read_all(fixture("gpt2_style") + "/tokenizer.json"));
  j["model"]["ignore_merges"] = true;
  j["model"]["vocab"]["\xC4\xA0zzzz"] = 512;  // "Ġzzzz": no merge makes it
  const std::string dir = test::temp_dir("bpe-ignore-merges");
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  const auto hf = load_tokenizer(dir + "/tokenizer.json");
  EXPECT_EQ(hf->encode("a zzzz"), (std::vector<int32_t>{hf->encode("a")[0], 512}));
  std::vector<std::string> notes;
  const Model back = load_model(export_gguf(with_tokenizer(hf, 600), "bpe-ignore-merges-out", &notes));
  ASSERT_FALSE(notes.empty());
  EXPECT_HAS(notes.back(), "gpt-2 pre-tokenizer applies merges");
  EXPECT_HAS(notes.back(), "1 of its tokens (e.g. '\xC4\xA0zzzz')");
  ASSERT_TRUE(back.tokenizer);
  const auto ids = back.tokenizer->encode("a zzzz");
  EXPECT_GT(ids.size(), 2u);  // merged from pieces, as llama.cpp does
  EXPECT_EQ(back.tokenizer->decode(ids), "a zzzz");
}

// Byte-level tokenizers llama.cpp has no pre-tokenizer for stay "no_vocab", saying why.
TEST(GgufBpeExport, UnknownPreTokenizersAreNotWritten) {
  for (const char* name : {"bytelevel_prefix_space", "split_behaviors_a", "whitespace_split"}) {
    SCOPED_TRACE(name);
    std::vector<std::string> notes;
    const std::string path = export_gguf(with_tokenizer(load_tokenizer(fixture(name)), 600),
                                         std::string("bpe-unknown-") + name, &notes);
    ASSERT_FALSE(notes.empty());
    EXPECT_HAS(notes.back(), "pre-tokenizer");
    EXPECT_HAS(notes.back(), "llama-bpe, qwen2");
    EXPECT_HAS(notes.back(), "no_vocab");
    EXPECT_EQ(GgufFile(path).metadata().get_string("tokenizer.ggml.model"), "no_vocab");
    EXPECT_FALSE(load_model(path).tokenizer);
  }
}

TEST(GgufBpeRead, BadMetadataIsRefusedNamingFileAndKey) {
  const std::string path = export_gguf(with_tokenizer(load_tokenizer(fixture("llama3_style")), 512), "bpe-bad");
  const GgufFile src(path);
  // A copy of the export with some tokenizer keys replaced.
  int n = 0;
  auto load_with = [&](std::vector<std::pair<std::string, GgufValue>> changes) {
    GgufWriter w;
    for (const auto& [k, val] : src.metadata().entries()) w.set(k, val);
    for (auto& [k, val] : changes) w.set(k, std::move(val));
    for (const auto& t : src.tensors()) w.add_tensor(t.name, src.read_tensor(t), GgmlType(t.type));
    const std::string out = test::temp_dir("bpe-bad-" + std::to_string(n++)) + "/x.gguf";
    w.write(out);
    return std::make_pair(out, test::error_of([&] { load_model(out); }));
  };
  const auto tokens = src.metadata().get_string_array("tokenizer.ggml.tokens");
  auto merges = src.metadata().get_string_array("tokenizer.ggml.merges");
  auto types = src.metadata().get_int_array("tokenizer.ggml.token_type");

  std::vector<int32_t> short_types(types.begin(), types.end() - 1);
  auto [f1, e1] = load_with({{"tokenizer.ggml.token_type", GgufValue::ints(short_types)}});
  EXPECT_HAS(e1, f1);
  EXPECT_HAS(e1, "tokenizer.ggml.token_type has 511 entries");
  EXPECT_HAS(e1, "tokenizer.ggml.tokens has 512");

  merges[3] = "Ġ zzqx";
  auto [f2, e2] = load_with({{"tokenizer.ggml.merges", GgufValue::strings(merges)}});
  EXPECT_HAS(e2, f2);
  EXPECT_HAS(e2, "tokenizer.ggml.merges[3]");
  EXPECT_HAS(e2, "'zzqx'");
  EXPECT_HAS(e2, "not in tokenizer.ggml.tokens");

  merges = src.metadata().get_string_array("tokenizer.ggml.merges");
  merges[5] = "nospace";
  auto [f3, e3] = load_with({{"tokenizer.ggml.merges", GgufValue::strings(merges)}});
  EXPECT_HAS(e3, f3);
  EXPECT_HAS(e3, "tokenizer.ggml.merges[5]");
  EXPECT_HAS(e3, "two tokens");

  auto [f4, e4] = load_with({{"tokenizer.ggml.pre", GgufValue("martian")}});
  EXPECT_HAS(e4, f4);
  EXPECT_HAS(e4, "tokenizer.ggml.pre 'martian'");
  EXPECT_HAS(e4, "llama-bpe");

  auto dup = tokens;
  dup[300] = dup[200];
  auto [f5, e5] = load_with({{"tokenizer.ggml.tokens", GgufValue::strings(dup)}});
  EXPECT_HAS(e5, f5);
  EXPECT_HAS(e5, "tokenizer.ggml.tokens[200] and [300]");

  auto [f6, e6] = load_with({{"tokenizer.ggml.eos_token_id", uint32_t{512}}});
  EXPECT_HAS(e6, f6);
  EXPECT_HAS(e6, "tokenizer.ggml.eos_token_id (512) is outside");

  std::vector<int32_t> bad_type(types.begin(), types.end());
  bad_type[7] = 9;
  auto [f7, e7] = load_with({{"tokenizer.ggml.token_type", GgufValue::ints(bad_type)}});
  EXPECT_HAS(e7, f7);
  EXPECT_HAS(e7, "tokenizer.ggml.token_type[7] is 9");
}

}  // namespace
}  // namespace mlar
