// GGUF deepseek2 export: metadata and tensor layout as llama.cpp reads them, the
// tokenizer as tokenizer.ggml.* metadata, and model -> export -> load_model giving
// the runtime's logits.
#include <gtest/gtest.h>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "export_models.h"
#include "io/deepseek_export.h"
#include "io/deepseek_read.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "tokenizer/load.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using test::DsKnobs;

std::string export_gguf(const Model& m, const std::string& tag, DeepseekExportOptions o = {},
                        std::vector<std::string>* notes = nullptr) {
  const std::string path = test::temp_dir(tag) + "/model.gguf";
  auto n = export_deepseek(m, DeepseekFormat::GgufDeepseek2, path, o);
  if (notes) *notes = n;
  return path;
}

std::string dev_text(size_t n) {
  std::ifstream f(test::data_path("text/tinystories-dev.txt"), std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str().substr(0, n);
}

TEST(GgufDeepseek2Export, RoundTripGivesTheLogits) {
  std::vector<std::pair<const char*, DsKnobs>> variants;
  variants.push_back({"q_lora, latent norm, untied, half, eps 1e-5", {}});
  DsKnobs b;
  b.q_lora = false;
  b.tied = true;
  b.layout = RopeLayout::Interleaved;
  b.eps = 1e-6;
  variants.push_back({"full q, tied, interleaved", b});
  DsKnobs d;
  d.freq_offset = 0;
  variants.push_back({"explicit frequencies of a head of 8", d});
  DsKnobs e;
  e.nope = 0;
  variants.push_back({"no NoPE part", e});
  int i = 0;
  for (const auto& [name, k] : variants) {
    SCOPED_TRACE(name);
    const Model m = test::deepseek_like(k);
    const std::string path = export_gguf(m, "gguf-rt" + std::to_string(i++));
    EXPECT_TRUE(is_gguf_deepseek2(path));
    const Model back = load_model(path);
    EXPECT_EQ(back.format, "gguf-deepseek2");
    test::expect_same_logits(m, back);
  }
}

TEST(GgufDeepseek2Export, MetadataAndTensorsAsLlamaCppReadsThem) {
  const Model m = test::deepseek_like();
  DeepseekExportOptions o;
  o.dtype = "F16";
  const GgufFile f(export_gguf(m, "gguf-meta", o));
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(md.get_string("general.architecture"), "deepseek2");
  auto u32 = [&](const std::string& k) {
    const GgufValue& v = md.at(k);
    EXPECT_EQ(v.type(), GgufValueType::U32) << k;
    return md.get_int(k);
  };
  EXPECT_EQ(u32("deepseek2.block_count"), 2);
  EXPECT_EQ(u32("deepseek2.leading_dense_block_count"), 2);
  EXPECT_EQ(u32("deepseek2.embedding_length"), 64);
  EXPECT_EQ(u32("deepseek2.feed_forward_length"), 96);
  EXPECT_EQ(u32("deepseek2.context_length"), 256);
  EXPECT_EQ(u32("deepseek2.attention.head_count"), 4);
  EXPECT_EQ(u32("deepseek2.attention.head_count_kv"), 1);
  EXPECT_EQ(u32("deepseek2.attention.kv_lora_rank"), 24);
  EXPECT_EQ(u32("deepseek2.attention.q_lora_rank"), 32);
  EXPECT_EQ(u32("deepseek2.attention.key_length"), 24 + 8);
  EXPECT_EQ(u32("deepseek2.attention.value_length"), 24);
  EXPECT_EQ(u32("deepseek2.attention.key_length_mla"), 16 + 8);
  EXPECT_EQ(u32("deepseek2.attention.value_length_mla"), 16);
  EXPECT_EQ(u32("deepseek2.rope.dimension_count"), 8);
  EXPECT_EQ(u32("deepseek2.expert_count"), 0);
  EXPECT_EQ(u32("deepseek2.expert_shared_count"), 0);
  EXPECT_EQ(u32("deepseek2.expert_feed_forward_length"), 96);
  EXPECT_EQ(u32("deepseek2.vocab_size"), 96);
  EXPECT_EQ(md.at("deepseek2.rope.freq_base").type(), GgufValueType::F32);
  EXPECT_EQ(md.at("deepseek2.attention.layer_norm_rms_epsilon").type(), GgufValueType::F32);
  EXPECT_FLOAT_EQ(static_cast<float>(md.get_float("deepseek2.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(md.at("deepseek2.expert_weights_scale").type(), GgufValueType::F32);
  EXPECT_EQ(md.get_string("tokenizer.ggml.model"), "no_vocab");  // the random model has no tokenizer

  EXPECT_EQ(f.tensor("blk.0.attn_k_b.weight").shape(), (Shape{4, 24, 16}));  // ne {d_n, r, n_h}
  EXPECT_EQ(f.tensor("blk.0.attn_v_b.weight").shape(), (Shape{4, 16, 24}));  // ne {r, d_v, n_h}
  EXPECT_EQ(f.tensor("blk.0.attn_kv_a_mqa.weight").shape(), (Shape{32, 64}));
  EXPECT_EQ(f.tensor("blk.0.attn_q_b.weight").shape(), (Shape{4 * 24, 32}));
  EXPECT_EQ(f.tensor("blk.0.attn_output.weight").shape(), (Shape{64, 64}));
  EXPECT_EQ(f.tensor("blk.1.attn_k_b.weight").type, uint32_t(GgmlType::F16));
  EXPECT_EQ(f.tensor("blk.1.attn_norm.weight").type, uint32_t(GgmlType::F32));
  EXPECT_EQ(f.tensor("blk.1.attn_kv_a_norm.weight").type, uint32_t(GgmlType::F32));
  EXPECT_EQ(f.tensor("blk.1.attn_q_a_norm.weight").type, uint32_t(GgmlType::F32));
  EXPECT_TRUE(f.has_tensor("output.weight"));
  EXPECT_FALSE(f.has_tensor("blk.0.attn_q.weight"));

  // attn_k_b[h] = W_uk[h]^T; attn_v_b[h] = W_uv[h] (of the model in the DeepSeek layout).
  const Model d = deepseek_layout(m, DeepseekFormat::GgufDeepseek2);
  const GgufFile f32(export_gguf(m, "gguf-kb"));
  const Tensor kb = f32.read_tensor("blk.1.attn_k_b.weight"), vb = f32.read_tensor("blk.1.attn_v_b.weight");
  const MlaLayerWeights& w = d.weights.layers[1].mla;
  for (int64_t h : {0, 3})
    for (int64_t n : {0, 5, 15})
      for (int64_t j : {0, 7, 23}) EXPECT_EQ(kb.data[(h * 24 + j) * 16 + n], w.w_uk.to_f32().data[(h * 16 + n) * 24 + j]);
  EXPECT_EQ(vb.data, w.w_uv.to_f32().data);

  // Full-rank q, tied head.
  DsKnobs k;
  k.q_lora = false;
  k.tied = true;
  const GgufFile g(export_gguf(test::deepseek_like(k), "gguf-meta2"));
  EXPECT_EQ(g.metadata().get_int("deepseek2.attention.q_lora_rank"), 0);
  EXPECT_EQ(g.tensor("blk.0.attn_q.weight").shape(), (Shape{4 * 24, 64}));
  // llama.cpp's deepseek2 loader requires output.weight: the tied head is a copy of the embedding.
  ASSERT_TRUE(g.has_tensor("output.weight"));
  EXPECT_EQ(g.tensor("output.weight").shape(), g.tensor("token_embd.weight").shape());
  const auto out_b = g.tensor_bytes(g.tensor("output.weight")), emb_b = g.tensor_bytes(g.tensor("token_embd.weight"));
  EXPECT_TRUE(std::equal(out_b.begin(), out_b.end(), emb_b.begin(), emb_b.end()));
  EXPECT_FALSE(g.has_tensor("blk.0.attn_q_a.weight"));
}

TEST(GgufDeepseek2Export, HalfPrecisionLoads) {
  const Model m = test::deepseek_like();
  DeepseekExportOptions o;
  o.dtype = "BF16";
  const auto ids = test::test_ids(m.config.vocab_size);
  const Tensor a = test::all_logits(m, ids), b = test::all_logits(load_model(export_gguf(m, "gguf-bf16", o)), ids);
  EXPECT_LE(test::max_abs_diff(a, b), 0.05 * test::max_abs(a));
}

// SentencePiece-style tokenizers become tokenizer.ggml.model "llama" and encode the
// same ids after the round trip, whichever form the model carried them in.
TEST(GgufDeepseek2Export, SentencePieceTokenizersRoundTrip) {
  const std::string text = dev_text(20000);
  struct Tok {
    const char* name;
    std::shared_ptr<const Tokenizer> tok;
  };
  const std::string st = test::data_path("models/stories260K");
  const std::vector<Tok> toks = {
      {"sentencepiece tok512.model", load_tokenizer(st + "/tok512.model")},
      {"llama2.c tok512.bin", load_tokenizer(st + "/tok512.bin")},
      {"tokenizer.json llama2_style", load_tokenizer(test::source_path("tests/fixtures/tokenizer/llama2_style"))},
      {"tokenizer.json llama2_metaspace",
       load_tokenizer(test::source_path("tests/fixtures/tokenizer/llama2_metaspace"))},
  };
  int i = 0;
  for (const Tok& t : toks) {
    SCOPED_TRACE(t.name);
    DsKnobs k;
    k.vocab = 600;  // more rows than tokens: the list is padded
    Model m = test::deepseek_like(k);
    m.tokenizer = t.tok;
    std::vector<std::string> notes;
    const std::string path = export_gguf(m, "gguf-tok" + std::to_string(i++), {}, &notes);
    EXPECT_TRUE(notes.empty() || notes[0].find("tokenizer") == std::string::npos) << notes[0];
    const GgufFile f(path);
    EXPECT_EQ(f.metadata().get_string("tokenizer.ggml.model"), "llama");
    EXPECT_EQ(f.metadata().get_string_array("tokenizer.ggml.tokens").size(), 600u);
    const Model back = load_model(path);
    ASSERT_TRUE(back.tokenizer);
    EXPECT_EQ(back.tokenizer->bos_id(), t.tok->bos_id());
    EXPECT_EQ(back.tokenizer->eos_id(), t.tok->eos_id());
    const auto a = t.tok->encode(text), b = back.tokenizer->encode(text);
    EXPECT_GT(a.size(), 1000u);
    EXPECT_EQ(a, b);
    EXPECT_EQ(back.tokenizer->decode(b), t.tok->decode(a));
  }
}

TEST(GgufDeepseek2Export, OtherTokenizersAreNotWritten) {
  // metaspace_split: SentencePiece-like but splitting words; byte-level BPE with a
  // prefix space: no llama.cpp pre-tokenizer (gguf_bpe_test.cpp has more).
  for (const char* fixture : {"bytelevel_prefix_space", "metaspace_split"}) {
    SCOPED_TRACE(fixture);
    DsKnobs k;
    k.vocab = 600;
    Model m = test::deepseek_like(k);
    m.tokenizer = load_tokenizer(test::source_path(std::string("tests/fixtures/tokenizer/") + fixture));
    std::vector<std::string> notes;
    const std::string path = export_gguf(m, std::string("gguf-notok-") + fixture, {}, &notes);
    ASSERT_FALSE(notes.empty());
    EXPECT_NE(notes.back().find("not written as GGUF metadata"), std::string::npos) << notes.back();
    EXPECT_NE(notes.back().find("no_vocab"), std::string::npos) << notes.back();
    EXPECT_EQ(GgufFile(path).metadata().get_string("tokenizer.ggml.model"), "no_vocab");
    const Model back = load_model(path);
    EXPECT_FALSE(back.tokenizer);
    test::expect_same_logits(m, back);
  }
}

TEST(GgufDeepseek2Read, RefusesWhatItCannotRun) {
  const Model m = test::deepseek_like();
  const std::string path = export_gguf(m, "gguf-bad");
  // Rewrite one metadata key through the writer: read, change, write elsewhere.
  auto with = [&](const std::string& key, GgufValue v) {
    const GgufFile f(path);
    GgufWriter w;
    for (const auto& [k2, val] : f.metadata().entries()) w.set(k2, val);
    w.set(key, std::move(v));
    for (const auto& t : f.tensors()) w.add_tensor(t.name, f.read_tensor(t), GgmlType(t.type));
    const std::string out = test::temp_dir("gguf-bad-" + key) + "/x.gguf";
    w.write(out);
    return test::error_of([&] { load_model(out); });
  };
  std::string e = with("deepseek2.leading_dense_block_count", uint32_t{1});
  EXPECT_NE(e.find("mixture-of-experts"), std::string::npos) << e;
  e = with("deepseek2.rope.scaling.type", "yarn");
  EXPECT_NE(e.find("rope.scaling.type"), std::string::npos) << e;
  e = with("deepseek2.attention.head_count_kv", uint32_t{4});
  EXPECT_NE(e.find("head_count_kv"), std::string::npos) << e;
  e = with("deepseek2.attention.kv_lora_rank", uint32_t{20});
  EXPECT_NE(e.find("key_length"), std::string::npos) << e;
}

}  // namespace
}  // namespace mlar
