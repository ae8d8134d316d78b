// make_random_hf: writes a random-weight HF Llama directory of a real model's shape
// (Llama-3-8B, Llama-3.2-1B, or fewer layers) without holding it in memory: every
// tensor is generated chunk by chunk straight into io/safetensors_stream.h's shard
// writer. For benchmarks of models larger than RAM (the weights are noise).
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "io/hf_model.h"
#include "io/json_file.h"
#include "io/safetensors_stream.h"
#include "util/atomic_output.h"
#include "util/error.h"
#include "util/half.h"
#include "util/progress.h"
#include "util/utf8.h"

namespace {

using namespace mlar;
using json = nlohmann::json;
namespace fs = std::filesystem;

const char* kUsage =
    "make_random_hf --out DIR [--shape llama3-8b|llama3-1b|H,L,NH,NKV,D,F,V] [--layers N] [--vocab V] [--dtype bf16|f16|f32]\n"
    "               [--seed S] [--tokenizer-from DIR] [--max-shard-bytes B] [--force]\n"
    "Writes a random-weight HF Llama directory (config.json, generation_config.json,\n"
    "safetensors shards + index, tokenizer.json, tokenizer_config.json) of a real shape,\n"
    "tensor by tensor, never holding the model in memory.\n"
    "  --shape llama3-8b   32 layers, hidden 4096, 32/8 heads of 128, FFN 14336, vocab 128256,\n"
    "                      rope_theta 500000, llama3 rope scaling (factor 8), 131072 positions,\n"
    "                      untied lm_head (default)\n"
    "  --shape llama3-1b   Llama-3.2-1B: 16 layers, hidden 2048, 32/8 heads of 64, FFN 8192,\n"
    "                      vocab 128256, llama3 rope scaling (factor 32), tied embeddings\n"
    "  --layers N          override the depth\n"
    "  --vocab V           override vocab_size (e.g. the tokenizer's size: `generate` can only\n"
    "                      decode ids the tokenizer knows, and greedy/sampled ids of a random\n"
    "                      128256-row head mostly lie outside a 4096-token tokenizer)\n"
    "  --dtype             weights on disk (default bf16)\n"
    "  --seed S            RNG seed (default 1); each tensor's values depend on the seed and its name only\n"
    "  --tokenizer-from D  copy tokenizer.json and tokenizer_config.json (and bos/eos ids from its\n"
    "                      config.json if any) from D; default $MLAR_DATA/models/llama3ish, else\n"
    "                      ../shared/data/models/llama3ish. Its vocabulary may be smaller than the\n"
    "                      model's vocab_size (extra embedding rows are never looked up).\n"
    "  --max-shard-bytes   shard size limit (default 5000000000, transformers' \"5GB\")\n"
    "  --force             replace an existing DIR\n"
    "Weights: normal, std 0.02 (quantised to 65536 levels), norms 1.0. Progress on stderr.\n";

struct Args {
  std::string out, shape = "llama3-8b", dtype = "bf16", tokenizer_from;
  int64_t layers = 0, vocab = 0;
  uint64_t seed = 1, max_shard = kDefaultMaxShardBytes;
  bool force = false;
};

Args parse(int argc, char** argv) {
  Args a;
  bench::parse_args(argc, argv, "make_random_hf", kUsage, [&](const std::string& k, auto& val) {
    if (k == "--out") a.out = val();
    else if (k == "--shape") a.shape = val();
    else if (k == "--layers") a.layers = bench::int_list(val(), k).front();
    else if (k == "--vocab") a.vocab = bench::int_list(val(), k).front();
    else if (k == "--dtype") a.dtype = val();
    else if (k == "--seed") a.seed = static_cast<uint64_t>(bench::int_list(val(), k).front());
    else if (k == "--tokenizer-from") a.tokenizer_from = val();
    else if (k == "--max-shard-bytes") a.max_shard = static_cast<uint64_t>(bench::int_list(val(), k).front());
    else if (k == "--force") a.force = true;
    else return false;
    return true;
  });
  if (a.out.empty()) fail("make_random_hf: --out is required (see --help)");
  return a;
}

ModelConfig preset(const std::string& name) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 128256;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.max_position_embeddings = 131072;
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position = 8192;
  c.bos_token_id = 128000;
  c.eos_token_id = 128001;
  if (name == "llama3-8b") {
    c.num_layers = 32;
    c.hidden_size = 4096;
    c.num_heads = 32;
    c.num_kv_heads = 8;
    c.head_dim = 128;
    c.intermediate_size = 14336;
    c.rope_scaling.factor = 8.0;
    c.tie_word_embeddings = false;
  } else if (name == "llama3-1b") {
    c.num_layers = 16;
    c.hidden_size = 2048;
    c.num_heads = 32;
    c.num_kv_heads = 8;
    c.head_dim = 64;
    c.intermediate_size = 8192;
    c.rope_scaling.factor = 32.0;
    c.tie_word_embeddings = true;
  } else if (name.find(',') != std::string::npos) {
    // H,L,NH,NKV,D,F,V as bench_context's --shape (no RoPE scaling, untied head): the
    // random model of bench_context as a file.
    c = bench::parse_shape(name, 32768);
    c.rope_theta = 10000.0;
    c.rope_scaling = RopeScaling{};
    c.bos_token_id = 1;
    c.eos_token_id = 2;
  } else {
    fail("make_random_hf: --shape '{}' is not llama3-8b, llama3-1b or H,L,NH,NKV,D,F,V", name);
  }
  return c;
}

fs::path default_tokenizer_dir() {
  if (const char* d = std::getenv("MLAR_DATA"); d && *d) return fs::path(d) / "models/llama3ish";
  return fs::path("../shared/data/models/llama3ish");
}

// splitmix64: a fast, well-mixed 64-bit generator.
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// Standard normal quantile of p in (0, 1), by bisection on erfc (slow, run 65536 times).
double normal_quantile(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// 65536 equiprobable levels of N(0, std^2) in the disk type, indexed by 16 random
// bits: four values per 64-bit random number.
class NormalTable {
 public:
  NormalTable(double stddev, DType dtype) : dtype_(dtype), size_(dtype_size(dtype)), bytes_(65536 * size_) {
    for (int i = 0; i < 65536; ++i) {
      const float v = static_cast<float>(stddev * normal_quantile((i + 0.5) / 65536.0));
      uint8_t* dst = bytes_.data() + i * size_;
      if (dtype == DType::F32) {
        std::memcpy(dst, &v, 4);
      } else {
        const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
        std::memcpy(dst, &h, 2);
      }
    }
  }
  // Fills `count` values starting at element `first` of the tensor seeded by `seed`.
  void fill(uint64_t seed, uint64_t first, uint64_t count, void* out) const {
    SplitMix rng{seed ^ (first * 0xd1342543de82ef95ull)};
    if (size_ == 2) {
      fill_as(rng, reinterpret_cast<const uint16_t*>(bytes_.data()), static_cast<uint16_t*>(out), count);
    } else {
      fill_as(rng, reinterpret_cast<const float*>(bytes_.data()), static_cast<float*>(out), count);
    }
  }

 private:
  // Four table indices from each random number (the table has 65536 entries).
  template <typename E>
  static void fill_as(SplitMix& rng, const E* t, E* d, uint64_t count) {
    uint64_t i = 0;
    for (; i + 4 <= count; i += 4) {
      const uint64_t r = rng.next();
      d[i] = t[r & 0xffff];
      d[i + 1] = t[(r >> 16) & 0xffff];
      d[i + 2] = t[(r >> 32) & 0xffff];
      d[i + 3] = t[r >> 48];
    }
    for (uint64_t r = rng.next(); i < count; ++i, r >>= 16) d[i] = t[r & 0xffff];
  }

  DType dtype_;
  size_t size_;
  std::vector<uint8_t> bytes_;
};

struct Spec {
  std::string name;
  Shape shape;
  bool norm;
};

std::vector<Spec> tensor_list(const ModelConfig& c) {
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim();
  std::vector<Spec> v;
  v.push_back({"model.embed_tokens.weight", {V, D}, false});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    v.push_back({p + "input_layernorm.weight", {D}, true});
    v.push_back({p + "self_attn.q_proj.weight", {Q, D}, false});
    v.push_back({p + "self_attn.k_proj.weight", {KV, D}, false});
    v.push_back({p + "self_attn.v_proj.weight", {KV, D}, false});
    v.push_back({p + "self_attn.o_proj.weight", {D, Q}, false});
    v.push_back({p + "post_attention_layernorm.weight", {D}, true});
    v.push_back({p + "mlp.gate_proj.weight", {F, D}, false});
    v.push_back({p + "mlp.up_proj.weight", {F, D}, false});
    v.push_back({p + "mlp.down_proj.weight", {D, F}, false});
  }
  v.push_back({"model.norm.weight", {D}, true});
  if (!c.tie_word_embeddings) v.push_back({"lm_head.weight", {V, D}, false});
  return v;
}

// bos/eos of the tokenizer's model, from its config.json or generation_config.json.
void take_special_ids(const fs::path& dir, ModelConfig& c) {
  for (const char* f : {"generation_config.json", "config.json"}) {
    const fs::path p = dir / f;
    if (!fs::exists(p)) continue;
    json j;
    try {
      j = json::parse(read_utf8_file(p.string()));
    } catch (const json::exception& e) {
      fail("{}: malformed JSON: {}", p.string(), e.what());
    }
    if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"];
    if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer()) c.eos_token_id = j["eos_token_id"];
    return;
  }
}

int run(const Args& a) {
  ModelConfig c = preset(a.shape);
  if (a.layers > 0) c.num_layers = a.layers;
  if (a.vocab > 0) c.vocab_size = a.vocab;
  const DType dtype = parse_write_dtype(a.dtype, "--dtype");
  const fs::path tok = a.tokenizer_from.empty() ? default_tokenizer_dir() : fs::path(a.tokenizer_from);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    if (!fs::is_regular_file(tok / f)) fail("{}: missing {} (see --tokenizer-from)", tok.string(), f);
  take_special_ids(tok, c);
  c.validate(a.out);

  const auto specs = tensor_list(c);
  uint64_t total = 0;
  for (const auto& s : specs) total += static_cast<uint64_t>(shape_numel(s.shape)) * dtype_size(dtype);
  fmt::print(stderr, "make_random_hf: {} ({} layers, {} tensors, {:.2f} GB as {}) -> {}\n", a.shape, c.num_layers,
             specs.size(), total / 1e9, dtype_name(dtype), a.out);

  const auto t0 = bench::clock_type::now();
  AtomicDir dir(a.out, a.force);
  write_json_file(dir.tmp_path() / "config.json", hf_llama_config_json(c, torch_dtype_name(dtype)));
  write_json_file(dir.tmp_path() / "generation_config.json",
                  {{"_from_model_config", true}, {"bos_token_id", c.bos_token_id}, {"eos_token_id", c.eos_token_id}});
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    std::error_code ec;
    fs::copy_file(tok / f, dir.tmp_path() / f, ec);
    if (ec) fail("{}: cannot copy {}: {}", a.out, (tok / f).string(), ec.message());
    // The shared data may be read-only; the copy belongs to the user.
    fs::permissions(dir.tmp_path() / f, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                            fs::perms::others_read, ec);
  }

  const NormalTable table(0.02, dtype);
  std::vector<uint8_t> one(dtype_size(dtype));
  {
    const float f = 1.0f;
    convert_elements(&f, DType::F32, one.data(), dtype, 1);
  }
  SafetensorsShardWriter w(dir.tmp_path(), a.max_shard);
  Progress progress("make_random_hf (MiB)", static_cast<int64_t>(total >> 20));
  uint64_t written = 0;
  for (const auto& s : specs) {
    const uint64_t seed = a.seed * 0x9e3779b97f4a7c15ull ^ hash_name(s.name);
    w.add(s.name, dtype, s.shape, [&](uint64_t first, uint64_t count, void* dst) {
      if (s.norm) {
        for (uint64_t i = 0; i < count; ++i)
          std::memcpy(static_cast<uint8_t*>(dst) + i * one.size(), one.data(), one.size());
      } else {
        table.fill(seed, first, count, dst);
      }
      written += count * one.size();
      progress.update(static_cast<int64_t>(written >> 20), s.name);
    });
  }
  const auto files = w.finish();
  dir.commit();
  progress.finish();
  fmt::print(stderr, "make_random_hf: wrote {} ({} weight files, {:.2f} GB) in {:.1f} s\n", a.out, files.size(),
             total / 1e9, bench::seconds_since(t0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
