#include "io/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numbers>
#include <set>

#include "io/gguf_bpe_vocab.h"
#include "util/error.h"

namespace mlar {
namespace {

// Reads a tensor after checking its shape, so errors name the GGUF tensor.
Tensor load(const GgufFile& f, const std::string& name, const Shape& expect, std::set<std::string>& used) {
  const GgufTensorInfo& t = f.tensor(name);
  if (t.shape() != expect)
    fail("{}: tensor {} has shape {}, expected {}", f.path(), name, shape_str(t.shape()), shape_str(expect));
  used.insert(name);
  return f.read_tensor(t);
}

// The same, in the file's dtype: a view of the mapped file for matrices (kept mapped
// by the view), an owned F32 copy for vectors.
TypedTensor load_typed(const std::shared_ptr<const GgufFile>& f, const std::string& name, const Shape& expect,
                       std::set<std::string>& used) {
  const GgufTensorInfo& t = f->tensor(name);
  if (expect.size() < 2 || !ggml_type_is_float(t.type)) return TypedTensor(load(*f, name, expect, used));
  if (t.shape() != expect)
    fail("{}: tensor {} has shape {}, expected {}", f->path(), name, shape_str(t.shape()), shape_str(expect));
  used.insert(name);
  const DType dt = t.type == static_cast<uint32_t>(GgmlType::F32)   ? DType::F32
                   : t.type == static_cast<uint32_t>(GgmlType::F16) ? DType::F16
                                                                    : DType::BF16;
  return TypedTensor::view(dt, t.shape(), f->tensor_bytes(t).data(), f);
}

// Llama 3 RoPE scaling reaches GGUF as `rope_freqs.weight`, one divisor per
// frequency. Accept it when it is exactly what RopeScaling::Llama3 computes
// (low/high frequency factors 1 and 4, as in every Llama 3.x release).
RopeScaling llama3_from_rope_freqs(const GgufFile& f, const ModelConfig& c, std::set<std::string>& used) {
  const int64_t half = c.head_dim / 2;
  Tensor rf = load(f, "rope_freqs.weight", {half}, used);
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.factor = *std::max_element(rf.data.begin(), rf.data.end());
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position = f.metadata().get_int("llama.rope.scaling.original_context_length", 8192);
  if (s.factor == 1.0 && std::all_of(rf.data.begin(), rf.data.end(), [](float x) { return x == 1.0f; }))
    return RopeScaling{};
  const double orig = static_cast<double>(s.original_max_position);
  const double low_wavelen = orig / s.low_freq_factor, high_wavelen = orig / s.high_freq_factor;
  for (int64_t i = 0; i < half; ++i) {
    const double freq = std::pow(c.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    double divisor = 1.0;
    if (wavelen > low_wavelen) {
      divisor = s.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      divisor = 1.0 / ((1 - smooth) / s.factor + smooth);
    }
    if (std::abs(rf.data[i] - divisor) > 1e-4 * divisor)
      fail("{}: rope_freqs.weight[{}] is {}, but Llama 3 RoPE scaling (factor {}, low/high frequency factors 1/4, "
           "original context {}) gives {}; other per-frequency RoPE factors are not supported",
           f.path(), i, rf.data[i], s.factor, s.original_max_position, divisor);
  }
  return s;
}

RopeScaling read_rope_scaling(const GgufFile& f, const ModelConfig& c, std::set<std::string>& used) {
  const GgufMetadata& md = f.metadata();
  RopeScaling s;
  std::string type = md.get_string("llama.rope.scaling.type", "");
  if (type.empty() && md.contains("llama.rope.scale_linear")) {  // older converters
    s.type = RopeScaling::Type::Linear;
    s.factor = md.get_float("llama.rope.scale_linear");
  } else if (type == "linear") {
    s.type = RopeScaling::Type::Linear;
    s.factor = md.get_float("llama.rope.scaling.factor");
  } else if (!type.empty() && type != "none") {
    fail("{}: llama.rope.scaling.type '{}' is not supported (none, linear, or Llama 3 rope_freqs)", f.path(), type);
  }
  if (s.type == RopeScaling::Type::Linear && s.factor == 1.0) s = RopeScaling{};
  if (f.has_tensor("rope_freqs.weight")) {
    if (s.type != RopeScaling::Type::None)
      fail("{}: both rope_freqs.weight and llama.rope.scaling.type '{}' are present", f.path(), type);
    s = llama3_from_rope_freqs(f, c, used);
  }
  return s;
}

ModelConfig read_config(const GgufFile& f) {
  const GgufMetadata& md = f.metadata();
  const std::string& path = f.path();
  ModelConfig c;
  c.arch = "llama";
  c.hidden_size = md.get_int("llama.embedding_length");
  c.intermediate_size = md.get_int("llama.feed_forward_length");
  c.num_layers = md.get_int("llama.block_count");
  c.num_heads = md.get_int("llama.attention.head_count");
  c.num_kv_heads = md.get_int("llama.attention.head_count_kv", c.num_heads);
  c.max_position_embeddings = md.get_int("llama.context_length");
  c.rms_norm_eps = md.get_float("llama.attention.layer_norm_rms_epsilon");
  c.rope_theta = md.get_float("llama.rope.freq_base", 10000.0);
  c.rope_layout = RopeLayout::Interleaved;  // llama.cpp's converter permutes q/k rows like llama2.c

  // Bound every size before any product of two of them is formed.
  auto bounded = [&](int64_t v, const char* key) {
    if (v <= 0 || v > (int64_t{1} << 30)) fail("{}: metadata key {} = {} is out of range", path, key, v);
  };
  bounded(c.hidden_size, "llama.embedding_length");
  bounded(c.intermediate_size, "llama.feed_forward_length");
  bounded(c.num_layers, "llama.block_count");
  bounded(c.num_heads, "llama.attention.head_count");
  bounded(c.num_kv_heads, "llama.attention.head_count_kv");
  if (md.contains("llama.attention.key_length")) {
    c.head_dim = md.get_int("llama.attention.key_length");
    bounded(c.head_dim, "llama.attention.key_length");
  } else {
    if (c.hidden_size % c.num_heads != 0)
      fail("{}: llama.attention.head_count ({}) does not divide llama.embedding_length ({})", path, c.num_heads,
           c.hidden_size);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  const int64_t v_len = md.get_int("llama.attention.value_length", c.head_dim);
  if (v_len != c.head_dim)
    fail("{}: llama.attention.value_length ({}) differs from the key length ({}); not supported", path, v_len,
         c.head_dim);
  const int64_t n_rot = md.get_int("llama.rope.dimension_count", c.head_dim);
  if (n_rot != c.head_dim)
    fail("{}: llama.rope.dimension_count ({}) differs from the head size ({}); partial RoPE is not supported", path,
         n_rot, c.head_dim);

  const GgufTensorInfo& embd = f.tensor("token_embd.weight");
  if (embd.ne.size() != 2)
    fail("{}: tensor token_embd.weight has shape {}, expected [vocab, {}]", path, shape_str(embd.shape()),
         c.hidden_size);
  c.vocab_size = embd.ne[1];
  if (md.contains("llama.vocab_size") && md.get_int("llama.vocab_size") != c.vocab_size)
    fail("{}: llama.vocab_size ({}) differs from the rows of token_embd.weight ({})", path,
         md.get_int("llama.vocab_size"), c.vocab_size);
  c.tie_word_embeddings = !f.has_tensor("output.weight");
  c.attention_bias = f.has_tensor("blk.0.attn_q.bias");
  // The runtime feeds bos_token_id to the embedding: a negative id would index before it.
  auto token_id = [&](const char* key, int64_t def) {
    const int64_t id = md.get_int(key, def);
    if (id < 0 || id > INT32_MAX) fail("{}: metadata key {} = {} is out of range", path, key, id);
    return static_cast<int32_t>(id);
  };
  c.bos_token_id = token_id("tokenizer.ggml.bos_token_id", 1);
  c.eos_token_id = token_id("tokenizer.ggml.eos_token_id", 2);
  return c;
}

}  // namespace

std::optional<SpmVocab> read_gguf_spm_vocab(const GgufFile& f) {
  const GgufMetadata& md = f.metadata();
  if (!md.contains("tokenizer.ggml.model")) return std::nullopt;
  // "gpt2" (byte-level BPE) is read by read_gguf_bpe_tokenizer.
  if (md.get_string("tokenizer.ggml.model") != "llama") return std::nullopt;
  SpmVocab v;
  v.pieces = md.get_string_array("tokenizer.ggml.tokens");
  const size_t n = v.pieces.size();
  if (md.contains("tokenizer.ggml.scores")) {
    v.scores = md.get_float_array("tokenizer.ggml.scores");
    if (v.scores.size() != n)
      fail("{}: tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}", f.path(), v.scores.size(), n);
  } else {
    v.scores.assign(n, 0.0f);
  }
  if (md.contains("tokenizer.ggml.token_type")) {
    std::vector<int64_t> types = md.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      fail("{}: tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}", f.path(), types.size(), n);
    v.types.assign(types.begin(), types.end());
  }
  auto id = [&](const char* key, int32_t def) {
    const int64_t i = md.get_int(key, def);
    if (i < 0 || static_cast<uint64_t>(i) >= n)
      fail("{}: {} ({}) is outside the vocabulary of {} tokens", f.path(), key, i, n);
    return static_cast<int32_t>(i);
  };
  v.bos_id = id("tokenizer.ggml.bos_token_id", 1);
  v.eos_id = id("tokenizer.ggml.eos_token_id", 2);
  v.unk_id = id("tokenizer.ggml.unknown_token_id", 0);
  v.add_dummy_prefix = md.get_bool("tokenizer.ggml.add_space_prefix", true);
  // tokenizer.ggml.add_bos_token is not carried: Tokenizer::encode never adds BOS,
  // the runtime decides.
  return v;
}

Model read_gguf_model(const std::string& path, const GgufModelOptions& opts) {
  auto file = std::make_shared<const GgufFile>(path);  // kept mapped by the weight views
  const GgufFile& f = *file;
  const std::string arch = f.metadata().get_string("general.architecture");
  if (arch != "llama") fail("{}: GGUF architecture '{}' is not supported (only 'llama' is read)", path, arch);

  Model m;
  m.source = path;
  m.format = "gguf";
  ModelConfig& c = m.config;
  c = read_config(f);
  std::set<std::string> used;
  c.rope_scaling = read_rope_scaling(f, c, used);
  c.validate(path);

  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, qd = c.q_dim(), kv = c.kv_dim();
  ModelWeights& W = m.weights;
  W.embed = load_typed(file, "token_embd.weight", {V, D}, used);
  // Layers are added as their tensors are read: llama.block_count alone (up to 2^30)
  // must not allocate anything.
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = W.layers.emplace_back();
    auto w = [&](const char* t, const Shape& s) {
      return load_typed(file, fmt::format("blk.{}.{}.weight", i, t), s, used);
    };
    l.attn_norm = w("attn_norm", {D});
    l.wq = w("attn_q", {qd, D});
    l.wk = w("attn_k", {kv, D});
    l.wv = w("attn_v", {kv, D});
    l.wo = w("attn_output", {D, qd});
    if (c.attention_bias) {
      auto b = [&](const char* t, int64_t n) { return load(f, fmt::format("blk.{}.{}.bias", i, t), {n}, used); };
      l.bq = b("attn_q", qd);
      l.bk = b("attn_k", kv);
      l.bv = b("attn_v", kv);
    }
    l.ffn_norm = w("ffn_norm", {D});
    l.w_gate = w("ffn_gate", {F, D});
    l.w_up = w("ffn_up", {F, D});
    l.w_down = w("ffn_down", {D, F});
  }
  W.final_norm = load(f, "output_norm.weight", {D}, used);
  if (!c.tie_word_embeddings) W.lm_head = load_typed(file, "output.weight", {V, D}, used);
  // A tensor nobody reads would silently change the model (MoE experts, rotary
  // tables of other variants...): refuse rather than guess.
  for (const auto& t : f.tensors())
    if (!used.count(t.name)) fail("{}: unexpected tensor {} (not part of a llama model)", path, t.name);
  check_weight_shapes(c, W, path);

  if (opts.tokenizer) {
    if (auto vocab = read_gguf_spm_vocab(f)) {
      if (static_cast<int64_t>(vocab->pieces.size()) > V)
        fail("{}: tokenizer.ggml.tokens has {} tokens but token_embd.weight has {} rows", path, vocab->pieces.size(),
             V);
      m.tokenizer = make_spm_vocab_tokenizer(std::move(*vocab), path);
    } else if (auto bpe = read_gguf_bpe_tokenizer(f)) {
      if (bpe->vocab_size() > V)
        fail("{}: tokenizer.ggml.tokens has {} tokens but token_embd.weight has {} rows", path, bpe->vocab_size(), V);
      m.tokenizer = std::move(bpe);
    }
  }
  return m;
}

}  // namespace mlar
