// Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/: small
// valid files made with the project's own writers (safetensors, GGUF, config.json)
// or laid out by hand (llama2.c), plus copies of small real files (tok512.bin,
// tok512.model, the tokenizer.json fixtures). Run once by hand; the output is
// committed (scripts/fuzz.sh never regenerates or grows it):
//   build-fuzz/fuzz/fuzz_make_seeds fuzz/corpus . ../shared/data
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <numbers>

#include <nlohmann/json.hpp>

#include "io/deepseek_export.h"
#include "io/gguf_writer.h"
#include "io/hf_model.h"
#include "io/safetensors_writer.h"
#include "model/config.h"
#include "model/mla.h"
#include "tokenizer/load.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace mlar;

namespace {

fs::path g_out;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("{}: cannot open", p.string());
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void spit(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_out / target);
  std::ofstream f(g_out / target / name, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) fail("{}: cannot write", (g_out / target / name).string());
}

// Deterministic values in [-1, 1).
struct Lcg {
  uint64_t s = 12345;
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(s >> 40) / static_cast<double>(1ull << 24) * 2.0 - 1.0);
  }
};

Tensor random_tensor(Lcg& r, Shape s) {
  Tensor t(std::move(s));
  for (auto& x : t.data) x = r.next();
  return t;
}

Tensor ones(Shape s) {
  Tensor t(std::move(s));
  for (auto& x : t.data) x = 1.0f;
  return t;
}

// ---- safetensors

void safetensors_seeds(const fs::path& tmp) {
  Lcg r;
  const TypedTensor a = random_tensor(r, {2, 3}), b = random_tensor(r, {4}), s = random_tensor(r, {});
  const std::vector<NamedTensor> ts = {{"model.a.weight", &a}, {"b", &b}, {"scalar", &s}};
  for (auto [dt, name] : {std::pair{DType::F32, "f32.safetensors"}, std::pair{DType::F16, "f16.safetensors"},
                          std::pair{DType::BF16, "bf16.safetensors"}}) {
    const fs::path p = tmp / name;
    write_safetensors(p, ts, dt, /*force=*/true);
    spit("safetensors", name, slurp(p));
  }
  // Other dtypes, an empty tensor and free-form metadata, written by hand.
  const std::string header =
      R"({"__metadata__":{"format":"pt","note":"x"},"i8":{"dtype":"I8","shape":[3],"data_offsets":[0,3]},)"
      R"("empty":{"dtype":"F32","shape":[0,5],"data_offsets":[3,3]},"u16":{"dtype":"U16","shape":[1,1],)"
      R"("data_offsets":[3,5]},"f64":{"dtype":"F64","shape":[1],"data_offsets":[5,13]}})";
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header;
  bytes += std::string("\x01\x02\x03\x04\x05", 5) + std::string(8, '\x3f');
  spit("safetensors", "mixed_dtypes.safetensors", bytes);
}

// ---- GGUF

struct TinyLlama {
  ModelConfig c;
  std::vector<std::pair<std::string, Tensor>> tensors;  // GGUF names, our shapes
};

TinyLlama tiny_llama(int64_t vocab, bool tied, bool bias, bool rope_freqs) {
  TinyLlama m;
  ModelConfig& c = m.c;
  c.vocab_size = vocab;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.max_position_embeddings = 32;
  Lcg r;
  const int64_t D = 8, F = 16, q = 8, kv = 4;
  auto add = [&](std::string name, Tensor t) { m.tensors.emplace_back(std::move(name), std::move(t)); };
  add("token_embd.weight", random_tensor(r, {vocab, D}));
  add("output_norm.weight", ones({D}));
  if (!tied) add("output.weight", random_tensor(r, {vocab, D}));
  add("blk.0.attn_norm.weight", ones({D}));
  add("blk.0.attn_q.weight", random_tensor(r, {q, D}));
  add("blk.0.attn_k.weight", random_tensor(r, {kv, D}));
  add("blk.0.attn_v.weight", random_tensor(r, {kv, D}));
  add("blk.0.attn_output.weight", random_tensor(r, {D, q}));
  if (bias) {
    add("blk.0.attn_q.bias", random_tensor(r, {q}));
    add("blk.0.attn_k.bias", random_tensor(r, {kv}));
    add("blk.0.attn_v.bias", random_tensor(r, {kv}));
  }
  add("blk.0.ffn_norm.weight", ones({D}));
  add("blk.0.ffn_gate.weight", random_tensor(r, {F, D}));
  add("blk.0.ffn_up.weight", random_tensor(r, {F, D}));
  add("blk.0.ffn_down.weight", random_tensor(r, {D, F}));
  if (rope_freqs) {
    // Llama 3 scaling (factor 8, low/high 1/4, original context 8192), as
    // read_gguf_model recomputes it.
    const double theta = 10000.0, orig = 8192, factor = 8, low = 1, high = 4;
    Tensor rf({2});
    for (int i = 0; i < 2; ++i) {
      const double freq = std::pow(theta, -2.0 * i / 4.0), wavelen = 2 * std::numbers::pi / freq;
      double d = 1.0;
      if (wavelen > orig / low) {
        d = factor;
      } else if (wavelen >= orig / high) {
        const double smooth = (orig / wavelen - low) / (high - low);
        d = 1.0 / ((1 - smooth) / factor + smooth);
      }
      rf.data[static_cast<size_t>(i)] = static_cast<float>(d);
    }
    add("rope_freqs.weight", rf);
  }
  return m;
}

void set_llama_metadata(GgufWriter& w, const ModelConfig& c) {
  w.set("general.architecture", "llama");
  w.set("general.name", "fuzz seed");
  w.set("llama.context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.set("llama.embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.set("llama.feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.set("llama.block_count", static_cast<uint32_t>(c.num_layers));
  w.set("llama.attention.head_count", static_cast<uint32_t>(c.num_heads));
  w.set("llama.attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.set("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w.set("llama.rope.freq_base", 10000.0f);
  w.set("llama.attention.layer_norm_rms_epsilon", 1e-5f);
}

void set_vocab(GgufWriter& w, const SpmVocab& v) {
  w.set("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.tokens", GgufValue::strings(v.pieces));
  w.set("tokenizer.ggml.scores", GgufValue::floats(v.scores));
  w.set("tokenizer.ggml.token_type", GgufValue::ints(v.types));
  w.set("tokenizer.ggml.bos_token_id", uint32_t{1});
  w.set("tokenizer.ggml.eos_token_id", uint32_t{2});
  w.set("tokenizer.ggml.unknown_token_id", uint32_t{0});
  w.set("tokenizer.ggml.add_space_prefix", true);
}

// A small SentencePiece-style vocabulary: specials, byte pieces, one user-defined
// and one unused piece, letters and merges.
SpmVocab small_vocab() {
  SpmVocab v;
  auto add = [&](std::string p, int32_t type) {
    v.scores.push_back(-static_cast<float>(v.pieces.size()));
    v.pieces.push_back(std::move(p));
    v.types.push_back(type);
  };
  add("<unk>", 2);
  add("<s>", 3);
  add("</s>", 3);
  for (const char* b : {"<0x0A>", "<0x20>", "<0x41>", "<0xC3>", "<0xBC>", "<0xFF>"}) add(b, 6);
  add("<user>", 4);
  add("\xE2\x96\x81\xE2\x96\x81", 5);
  for (const char* p : {"\xE2\x96\x81", "a", "b", "e", "i", "m", "n", "o", "t", "\xE2\x96\x81t", "\xE2\x96\x81" "a",
                        "on", "\xE2\x96\x81on", "\xE2\x96\x81ti", "me", "\xE2\x96\x81time", "\xE2\x96\x81" "ab"})
    add(p, 1);
  return v;
}

void write_gguf_seed(const fs::path& tmp, const std::string& name, const TinyLlama& m, const SpmVocab* vocab,
                     GgmlType type, const std::function<void(GgufWriter&)>& extra = {}) {
  GgufWriter w;
  set_llama_metadata(w, m.c);
  if (vocab) set_vocab(w, *vocab);
  if (extra) extra(w);
  for (const auto& [n, t] : m.tensors) w.add_tensor(n, t, n == "rope_freqs.weight" ? GgmlType::F32 : type);
  const fs::path p = tmp / name;
  w.write(p, /*force=*/true);
  spit("gguf", name, slurp(p));
}

void gguf_seeds(const fs::path& tmp, const fs::path& data) {
  const SpmVocab small = small_vocab();
  const int64_t n_small = static_cast<int64_t>(small.pieces.size());
  write_gguf_seed(tmp, "llama_tied_f32.gguf", tiny_llama(n_small, true, false, false), &small, GgmlType::F32);
  write_gguf_seed(tmp, "llama_bias_f16.gguf", tiny_llama(n_small, false, true, false), &small, GgmlType::F16);
  write_gguf_seed(tmp, "llama_rope_freqs_bf16.gguf", tiny_llama(n_small, true, false, true), &small, GgmlType::BF16,
                  [](GgufWriter& w) { w.set("llama.rope.scaling.original_context_length", uint32_t{8192}); });
  write_gguf_seed(tmp, "llama_linear_rope_no_vocab.gguf", tiny_llama(12, true, false, false), nullptr, GgmlType::F32,
                  [](GgufWriter& w) {
                    w.set("llama.rope.scaling.type", "linear");
                    w.set("llama.rope.scaling.factor", 2.0f);
                    w.set("llama.attention.key_length", uint32_t{4});
                    w.set("llama.vocab_size", uint32_t{12});
                  });
  // The real 512-piece vocabulary of stories260K (tok512.bin), on a tiny model.
  SpmVocab v512 = read_llama2c_vocab((data / "models/stories260K/tok512.bin").string());
  const auto n512 = static_cast<int64_t>(v512.pieces.size());
  write_gguf_seed(tmp, "llama_tok512_f16.gguf", tiny_llama(n512, true, false, false), &v512, GgmlType::F16);

  // A dense deepseek2 file in the MLA form, as read_gguf_deepseek2_model reads it:
  // H 2, D 8, F 16, kv_lora_rank 4, rope dims 2, nope dims 2, value dims 2.
  {
    GgufWriter w;
    const std::string k = "deepseek2.";
    w.set("general.architecture", "deepseek2");
    w.set(k + "block_count", uint32_t{1});
    w.set(k + "context_length", uint32_t{32});
    w.set(k + "embedding_length", uint32_t{8});
    w.set(k + "feed_forward_length", uint32_t{16});
    w.set(k + "attention.head_count", uint32_t{2});
    w.set(k + "attention.head_count_kv", uint32_t{1});
    w.set(k + "attention.layer_norm_rms_epsilon", 1e-5f);
    w.set(k + "attention.kv_lora_rank", uint32_t{4});
    w.set(k + "attention.key_length_mla", uint32_t{4});
    w.set(k + "attention.value_length_mla", uint32_t{2});
    w.set(k + "attention.key_length", uint32_t{6});
    w.set(k + "attention.value_length", uint32_t{4});
    w.set(k + "rope.dimension_count", uint32_t{2});
    w.set(k + "leading_dense_block_count", uint32_t{1});
    set_vocab(w, small);
    Lcg r;
    const int64_t V = n_small, D = 8, F = 16, H = 2;
    std::vector<std::pair<std::string, Tensor>> ts;
    ts.emplace_back("token_embd.weight", random_tensor(r, {V, D}));
    ts.emplace_back("output_norm.weight", ones({D}));
    ts.emplace_back("blk.0.attn_norm.weight", ones({D}));
    ts.emplace_back("blk.0.attn_q.weight", random_tensor(r, {H * 4, D}));
    ts.emplace_back("blk.0.attn_kv_a_mqa.weight", random_tensor(r, {6, D}));
    ts.emplace_back("blk.0.attn_kv_a_norm.weight", ones({4}));
    ts.emplace_back("blk.0.attn_k_b.weight", random_tensor(r, {H, 4, 2}));
    ts.emplace_back("blk.0.attn_v_b.weight", random_tensor(r, {H, 2, 4}));
    ts.emplace_back("blk.0.attn_output.weight", random_tensor(r, {D, H * 2}));
    ts.emplace_back("blk.0.ffn_norm.weight", ones({D}));
    ts.emplace_back("blk.0.ffn_gate.weight", random_tensor(r, {F, D}));
    ts.emplace_back("blk.0.ffn_up.weight", random_tensor(r, {F, D}));
    ts.emplace_back("blk.0.ffn_down.weight", random_tensor(r, {D, F}));
    for (const auto& [n, t] : ts) w.add_tensor(n, t, GgmlType::F16);
    const fs::path p = tmp / "deepseek2_mla_f16.gguf";
    w.write(p, true);
    spit("gguf", "deepseek2_mla_f16.gguf", slurp(p));
  }

  // Every metadata value type, nested arrays, a custom alignment, non-float tensors.
  GgufWriter w;
  w.set("general.alignment", uint32_t{64});
  w.set("t.u8", uint8_t{200});
  w.set("t.i8", int8_t{-100});
  w.set("t.u16", uint16_t{60000});
  w.set("t.i16", int16_t{-30000});
  w.set("t.u32", uint32_t{4000000000u});
  w.set("t.i32", int32_t{-2000000000});
  w.set("t.f32", 1.5f);
  w.set("t.bool", true);
  w.set("t.str", "caf\xC3\xA9\n\"q\"");
  w.set("t.u64", uint64_t{18000000000000000000ull});
  w.set("t.i64", int64_t{-9000000000000000000ll});
  w.set("t.f64", 2.25);
  w.set("t.ints", GgufValue::ints({1, -2, 3}));
  w.set("t.strs", GgufValue::strings({"a", "", "ccc"}));
  w.set("t.nested", GgufValue::array(GgufValueType::Array, {GgufValue::floats({1.0f, 2.0f}), GgufValue::ints({7})}));
  w.set("t.empty", GgufValue::array(GgufValueType::U8, {}));
  Lcg r;
  const Tensor f = random_tensor(r, {3, 2});
  w.add_tensor("f", f, GgmlType::F32);
  w.add_tensor("h", f, GgmlType::F16);
  w.add_raw_tensor("q4", {32}, static_cast<uint32_t>(GgmlType::Q4_0), std::vector<uint8_t>(18, 0x11));
  w.add_raw_tensor("i32", {2, 1}, static_cast<uint32_t>(GgmlType::I32), std::vector<uint8_t>(8, 0x7f));
  w.add_raw_tensor("empty", {0}, static_cast<uint32_t>(GgmlType::F32), {});
  const fs::path p = tmp / "all_types.gguf";
  w.write(p, true);
  spit("gguf", "all_types.gguf", slurp(p));
}

// ---- llama2.c checkpoints

std::string llama2c_bin(int32_t dim, int32_t hidden, int32_t layers, int32_t heads, int32_t kv, int32_t vocab,
                        int32_t seq_len) {
  const int32_t h[7] = {dim, hidden, layers, heads, kv, vocab, seq_len};
  std::string out(reinterpret_cast<const char*>(h), sizeof h);
  const int64_t V = std::abs(vocab), D = dim, F = hidden, L = layers, hs = dim / heads, q = heads * hs, k = kv * hs;
  const int64_t n = V * D + L * D + L * q * D + 2 * L * k * D + L * D * q + L * D + 3 * L * F * D + D + seq_len * hs +
                    (vocab > 0 ? 0 : V * D);
  Lcg r;
  for (int64_t i = 0; i < n; ++i) {
    const float x = r.next();
    out.append(reinterpret_cast<const char*>(&x), 4);
  }
  return out;
}

// ---- config.json

ModelConfig base_config(const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 64;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.max_position_embeddings = 128;
  c.attention_bias = arch == "qwen2";
  return c;
}

void config_seeds() {
  ModelConfig llama = base_config("llama");
  llama.rope_scaling = {RopeScaling::Type::Llama3, 8.0, 1.0, 4.0, 8192};
  spit("hf_config", "llama3.json", hf_config_json(llama).dump(2));
  ModelConfig lin = base_config("llama");
  lin.rope_scaling.type = RopeScaling::Type::Linear;
  lin.rope_scaling.factor = 2.0;
  lin.tie_word_embeddings = true;
  nlohmann::json lj = hf_config_json(lin);
  lj["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 500000.0}};
  lj.erase("rope_scaling");
  lj.erase("rope_theta");
  lj["eos_token_id"] = {2, 3};
  spit("hf_config", "llama_rope_parameters.json", lj.dump());
  ModelConfig qwen = base_config("qwen2");
  qwen.sliding_window = 64;
  spit("hf_config", "qwen2.json", hf_config_json(qwen).dump());
  ModelConfig mistral = base_config("mistral");
  mistral.sliding_window = 32;
  spit("hf_config", "mistral.json", hf_config_json(mistral).dump());

  // An MLA directory's config.json (docs/mla-format.md).
  MlaConfig m;
  m.rope_mode = RopeMode::Extend;
  m.kv_lora_rank = 8;
  m.layer_kv_lora_rank = {8, 6};
  m.qk_nope_head_dim = 4;
  m.qk_rope_head_dim = 4;
  m.num_rope_heads = 1;
  m.v_head_dim = 4;
  m.q_lora_rank = 6;
  m.latent_norm = true;
  m.softmax_scale = 0.35;
  m.rope_inv_freq = {1.0, 0.01};
  nlohmann::json mj = hf_config_json(base_config("llama"));
  mj["mla"] = mla_config_to_json(m);
  mj["mla"]["rope_layout"] = "half";
  mj["mla_retrofit"] = {{"format_version", 1}, {"converted_from", {{"path", "x"}}}};
  spit("hf_config", "mla_extend.json", mj.dump());
  MlaConfig rep;
  rep.kv_lora_rank = 8;
  rep.qk_rope_head_dim = 4;
  rep.num_rope_heads = 2;
  rep.v_head_dim = 4;
  rep.q_rope_in_dim = 4;
  rep.absorbed = true;
  rep.softmax_scale = 0.5;
  nlohmann::json rj = hf_config_json(base_config("qwen2"));
  rj["mla"] = mla_config_to_json(rep);
  rj["mla_retrofit"] = {{"format_version", 1}};
  spit("hf_config", "mla_repeat_absorbed.json", rj.dump());

  // DeepSeek-V3 config.json files as the exporter writes them (read_deepseek_v3_model).
  ModelConfig ds = base_config("llama");
  ds.num_kv_heads = ds.num_heads;
  MlaConfig dm;
  dm.rope_mode = RopeMode::Extend;
  dm.kv_lora_rank = 8;
  dm.qk_nope_head_dim = 4;
  dm.qk_rope_head_dim = 4;
  dm.num_rope_heads = 1;
  dm.v_head_dim = 4;
  dm.latent_norm = true;
  dm.softmax_scale = 1.0 / std::sqrt(8.0);
  ds.mla = dm;
  ds.rope_layout = RopeLayout::Interleaved;
  spit("deepseek_v3_config", "dense.json", deepseek_v3_config_json(ds, "bfloat16", "seed").dump(2));
  ds.mla->q_lora_rank = 6;
  ds.attention_bias = true;
  ds.rope_layout = RopeLayout::Half;
  nlohmann::json dj = deepseek_v3_config_json(ds, "float32", "seed");
  spit("deepseek_v3_config", "q_lora_bias_half.json", dj.dump());
  dj["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"mscale_all_dim", 1.0}, {"mscale", 1.0},
                        {"original_max_position_embeddings", 64}, {"beta_fast", 32}, {"beta_slow", 1}};
  spit("deepseek_v3_config", "yarn.json", dj.dump());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s OUT_CORPUS_DIR SOURCE_DIR DATA_DIR\n", argv[0]);
    return 2;
  }
  try {
    g_out = argv[1];
    const fs::path src = argv[2], data = argv[3];
    const fs::path tmp = fs::temp_directory_path() / "mlar-fuzz-seeds";
    fs::create_directories(tmp);

    safetensors_seeds(tmp);
    gguf_seeds(tmp, data);

    spit("llama2c_model", "tiny_shared.bin", llama2c_bin(8, 16, 1, 2, 1, 32, 4));
    spit("llama2c_model", "tiny_unshared.bin", llama2c_bin(8, 12, 2, 2, 2, -16, 2));

    const fs::path stories = data / "models/stories260K";
    spit("llama2c_tokenizer", "tok512.bin", slurp(stories / "tok512.bin"));
    {
      std::string t;
      auto i32 = [&](int32_t v) { t.append(reinterpret_cast<const char*>(&v), 4); };
      auto f32 = [&](float v) { t.append(reinterpret_cast<const char*>(&v), 4); };
      i32(6);
      float score = 0;
      for (const char* p : {"<unk>", "\n<s>\n", "\n</s>\n", "<0x41>", " ", "a", "b", " a", "ab", " ab"}) {
        f32(score);
        score -= 1;
        i32(static_cast<int32_t>(std::strlen(p)));
        t += p;
      }
      spit("llama2c_tokenizer", "tiny.bin", t);
    }
    spit("spm_model", "tok512.model", slurp(stories / "tok512.model"));

    config_seeds();

    // The HF tokenizer.json fixtures; a tokenizer_config.json follows a NUL byte.
    for (const auto& e : fs::directory_iterator(src / "tests/fixtures/tokenizer")) {
      if (!e.is_directory() || !fs::exists(e.path() / "tokenizer.json")) continue;
      std::string bytes = slurp(e.path() / "tokenizer.json");
      if (fs::exists(e.path() / "tokenizer_config.json"))
        bytes += std::string(1, '\0') + slurp(e.path() / "tokenizer_config.json");
      spit("hf_tokenizer", e.path().filename().string() + ".json", bytes);
    }
    fs::remove_all(tmp);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
