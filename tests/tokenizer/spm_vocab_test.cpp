// SpmVocab: inferred types, checks, and the SentencePiece options the tok512 check does
// not reach (no whitespace collapsing, no dummy prefix, unused and user-defined
// pieces, the whole-text merge path), each against libsentencepiece with tok512.model
// rewritten to carry the same option.
#include <gtest/gtest.h>

#include <functional>

#include "common/test_data.h"
#include "tokenizer/load.h"
#include "tokenizer_test_util.h"
#include "util/utf8.h"

namespace mlar {
namespace {

// --- a minimal protobuf rewriter for tok512.model ---------------------------------

struct PbField {
  uint32_t number, wire;
  uint64_t varint = 0;
  std::string bytes;  // wire 2, or the raw 4 / 8 bytes
};

uint64_t read_varint(const std::string& s, size_t& i) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const auto b = static_cast<unsigned char>(s.at(i++));
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (b < 0x80) return v;
  }
}

void write_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

std::vector<PbField> parse(const std::string& s) {
  std::vector<PbField> out;
  size_t i = 0;
  while (i < s.size()) {
    const uint64_t key = read_varint(s, i);
    PbField f{static_cast<uint32_t>(key >> 3), static_cast<uint32_t>(key & 7), 0, {}};
    if (f.wire == 0) {
      f.varint = read_varint(s, i);
    } else {
      const size_t n = f.wire == 2 ? read_varint(s, i) : f.wire == 5 ? 4 : 8;
      f.bytes = s.substr(i, n);
      i += n;
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::string serialize(const std::vector<PbField>& fields) {
  std::string out;
  for (const auto& f : fields) {
    write_varint(out, (uint64_t{f.number} << 3) | f.wire);
    if (f.wire == 0) {
      write_varint(out, f.varint);
    } else {
      if (f.wire == 2) write_varint(out, f.bytes.size());
      out += f.bytes;
    }
  }
  return out;
}

// Sets varint field `number` of the submessage `sub` (2 trainer, 3 normalizer).
std::string set_spec(const std::string& model, uint32_t sub, uint32_t number, uint64_t value) {
  auto top = parse(model);
  for (auto& f : top) {
    if (f.number != sub) continue;
    auto fields = parse(f.bytes);
    bool found = false;
    for (auto& g : fields)
      if (g.number == number) g.varint = value, found = true;
    if (!found) fields.push_back({number, 0, value, {}});
    f.bytes = serialize(fields);
  }
  return serialize(top);
}

// Sets the type of piece `id`.
std::string set_piece_type(const std::string& model, int id, uint64_t type) {
  auto top = parse(model);
  int k = 0;
  for (auto& f : top) {
    if (f.number != 1 || k++ != id) continue;
    auto fields = parse(f.bytes);
    std::erase_if(fields, [](const PbField& g) { return g.number == 3; });
    fields.push_back({3, 0, type, {}});
    f.bytes = serialize(fields);
  }
  return serialize(top);
}

// --- helpers ---------------------------------------------------------------------

std::string tok512_model() { return test::read_all(test::data_path("models/stories260K/tok512.model")); }

SpmVocab tok512_vocab() { return read_llama2c_vocab(test::data_path("models/stories260K/tok512.bin")); }

std::shared_ptr<const Tokenizer> sentencepiece_with(const std::string& model_bytes) {
  const std::string path = test::temp_dir("spm") + "/patched.model";
  test::write_all(path, model_bytes);
  return load_tokenizer(path);
}

const std::vector<std::string>& probe_texts() {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> t = {"",
                                  " ",
                                  "  ",
                                  " a",
                                  "a  b",
                                  "  lead and trail  ",
                                  "a \n b\n\n  c",
                                  "x",
                                  "\xF0\x9F\x98\x80",
                                  "Once upon a time, there was a red bed."};
    const std::string wiki = read_utf8_file(test::data_path("text/wikitext2-test.raw"));
    t.push_back(wiki.substr(0, 20000));
    t.push_back(read_utf8_file(test::data_path("text/tinystories-dev.txt")));
    return t;
  }();
  return texts;
}

void expect_same(const Tokenizer& sp, const Tokenizer& ours, const std::string& what) {
  for (const auto& t : probe_texts()) {
    const auto a = sp.encode(t), b = ours.encode(t);
    EXPECT_EQ(test::first_difference(a, b), -1)
        << what << ": text of " << t.size() << " bytes '" << t.substr(0, 40) << "', " << a.size() << " vs " << b.size();
    std::vector<int32_t> no_unk;
    for (int32_t id : a)
      if (id != 0) no_unk.push_back(id);
    EXPECT_EQ(ours.decode(no_unk), sp.decode(no_unk)) << what;
  }
}

// --- tests -------------------------------------------------------------------------

TEST(SpmVocab, TypesAreInferred) {
  const SpmVocab v = tok512_vocab();
  ASSERT_EQ(v.types.size(), 512u);
  EXPECT_EQ(v.types[0], 2);    // <unk>
  EXPECT_EQ(v.types[1], 3);    // <s>
  EXPECT_EQ(v.types[2], 3);    // </s>
  EXPECT_EQ(v.types[3], 6);    // <0x00>
  EXPECT_EQ(v.types[258], 6);  // <0xFF>
  EXPECT_EQ(v.types[259], 1);  // ▁t
  EXPECT_EQ(v.pieces[1], "<s>");
  EXPECT_EQ(v.pieces[259], "\xE2\x96\x81t");
  EXPECT_TRUE(v.remove_extra_whitespaces.value());  // no "▁▁" piece
}

TEST(SpmVocab, ChecksItsInput) {
  SpmVocab v = tok512_vocab();
  v.scores.pop_back();
  test::expect_error([&] { make_spm_vocab_tokenizer(v, "vocab.gguf"); }, {"vocab.gguf", "512 pieces but 511 scores"});
  v = tok512_vocab();
  v.eos_id = 600;
  test::expect_error([&] { make_spm_vocab_tokenizer(v, "vocab.gguf"); }, {"vocab.gguf", "EOS id 600"});
  v = tok512_vocab();
  v.types[300] = 9;
  test::expect_error([&] { make_spm_vocab_tokenizer(v, "vocab.gguf"); }, {"vocab.gguf", "token 300", "type 9"});
  v = tok512_vocab();
  v.types[300] = 6;
  test::expect_error([&] { make_spm_vocab_tokenizer(v, "vocab.gguf"); }, {"vocab.gguf", "byte token 300"});
  test::expect_error([&] { make_spm_vocab_tokenizer(SpmVocab{}, "vocab.gguf"); }, {"vocab.gguf", "empty"});
}

TEST(SpmVocab, KeepsWhitespaceLikeSentencePieceWithoutRemoveExtraWhitespaces) {
  auto sp = sentencepiece_with(set_spec(tok512_model(), 3, 4, 0));
  SpmVocab v = tok512_vocab();
  v.remove_extra_whitespaces = false;
  expect_same(*sp, *make_spm_vocab_tokenizer(v, "vocab"), "remove_extra_whitespaces=false");
}

TEST(SpmVocab, NoDummyPrefixLikeSentencePiece) {
  auto sp = sentencepiece_with(set_spec(tok512_model(), 3, 3, 0));
  SpmVocab v = tok512_vocab();
  v.add_dummy_prefix = false;
  expect_same(*sp, *make_spm_vocab_tokenizer(v, "vocab"), "add_dummy_prefix=false");
}

TEST(SpmVocab, UnusedPiecesAreResegmentedLikeSentencePiece) {
  std::string model = tok512_model();
  SpmVocab v = tok512_vocab();
  for (int id : {265, 266, 300, 301}) {  // ▁the, ed, ...
    model = set_piece_type(model, id, 5);
    v.types[static_cast<size_t>(id)] = 5;
  }
  expect_same(*sentencepiece_with(model), *make_spm_vocab_tokenizer(v, "vocab"), "unused pieces");
}

TEST(SpmVocab, UserDefinedPiecesStayWholeLikeSentencePiece) {
  std::string model = tok512_model();
  SpmVocab v = tok512_vocab();
  for (int id : {266, 270}) {
    model = set_piece_type(model, id, 4);
    v.types[static_cast<size_t>(id)] = 4;
  }
  expect_same(*sentencepiece_with(model), *make_spm_vocab_tokenizer(v, "vocab"), "user-defined pieces");
}

// A piece with U+2581 inside turns off the cut into words; the single merge over the
// whole text must give the same ids.
TEST(SpmVocab, WholeTextMergeMatchesSentencePiece) {
  SpmVocab v = tok512_vocab();
  v.pieces.push_back("zq\xE2\x96\x81zq");
  v.scores.push_back(-1000.0f);
  v.types.push_back(1);
  expect_same(*load_tokenizer(test::data_path("models/stories260K/tok512.model")), *make_spm_vocab_tokenizer(v, "v"),
              "whole-text merge");
}

TEST(SpmVocab, SaveHfWithoutCollapsingUsesTheLlamaClass) {
  SpmVocab v = tok512_vocab();
  v.remove_extra_whitespaces = false;
  auto t = make_spm_vocab_tokenizer(v, "vocab");
  const std::string dir = test::temp_dir("hf-keep-ws");
  t->save_hf(dir);
  const std::string cfg = test::read_all(dir + "/tokenizer_config.json");
  EXPECT_NE(cfg.find("\"LlamaTokenizerFast\""), std::string::npos);
  EXPECT_EQ(test::read_all(dir + "/tokenizer.json").find("{2,}"), std::string::npos);
  auto back = load_tokenizer(dir);
  for (const auto& s : probe_texts()) EXPECT_EQ(back->encode(s), t->encode(s)) << "'" << s.substr(0, 30) << "'";
}

}  // namespace
}  // namespace mlar
