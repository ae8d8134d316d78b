// Reading GGUF deepseek2 files (dense, MLA form) into MLA models.
#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "io/deepseek_read.h"
#include "io/gguf.h"
#include "io/gguf_bpe_vocab.h"
#include "io/gguf_model.h"
#include "util/error.h"

namespace mlar {

bool is_gguf_deepseek2(const std::string& path) {
  try {
    const GgufFile f(path);
    return f.metadata().get_string("general.architecture", "") == "deepseek2";
  } catch (const std::exception&) {
    return false;
  }
}

Model read_gguf_deepseek2_model(const std::string& path) {
  const GgufFile f(path);
  const GgufMetadata& md = f.metadata();
  if (md.get_string("general.architecture") != "deepseek2")
    fail("{}: general.architecture is '{}', not deepseek2", path, md.get_string("general.architecture"));
  const std::string k = "deepseek2.";
  auto get = [&](const std::string& key) {
    const int64_t v = md.get_int(key);
    if (v < 0 || v > (int64_t{1} << 30)) fail("{}: metadata key {} = {} is out of range", path, key, v);
    return v;
  };
  auto get_or = [&](const std::string& key, int64_t def) { return md.contains(key) ? get(key) : def; };

  ModelConfig c;
  c.arch = "llama";
  c.num_layers = get(k + "block_count");
  c.hidden_size = get(k + "embedding_length");
  c.intermediate_size = get(k + "feed_forward_length");
  c.num_heads = get(k + "attention.head_count");
  c.num_kv_heads = c.num_heads;
  c.max_position_embeddings = get(k + "context_length");
  c.rms_norm_eps = md.get_float(k + "attention.layer_norm_rms_epsilon");
  c.rope_theta = md.get_float(k + "rope.freq_base", 10000.0);
  c.rope_layout = RopeLayout::Interleaved;  // llama.cpp ropes deepseek2 pairs (2i, 2i+1)

  const int64_t dense = get_or(k + "leading_dense_block_count", 0), experts = get_or(k + "expert_count", 0);
  if (dense < c.num_layers || experts > 0)
    fail("{}: blocks {} to {} are mixture-of-experts (leading_dense_block_count {}, expert_count {}); only dense "
         "deepseek2 models (what export writes) are read",
         path, dense, c.num_layers - 1, dense, experts);
  const std::string scaling = md.get_string(k + "rope.scaling.type", "none");
  if (scaling != "none")
    fail("{}: {}rope.scaling.type is '{}'; llama.cpp's deepseek2 ties RoPE scaling to YaRN attention factors, which "
         "the runtime does not model (only unscaled RoPE is read)",
         path, k, scaling);
  if (!md.contains(k + "attention.key_length_mla") || f.has_tensor("blk.0.attn_kv_b.weight"))
    fail("{}: a legacy deepseek2 file (attn_kv_b, no attention.key_length_mla); only the MLA form with attn_k_b / "
         "attn_v_b is read",
         path);
  const int64_t n_kv = get_or(k + "attention.head_count_kv", 1);
  if (n_kv != 1) fail("{}: {}attention.head_count_kv is {}; the MLA form has 1", path, k, n_kv);

  MlaConfig a;
  a.rope_mode = RopeMode::Extend;
  a.kv_lora_rank = get(k + "attention.kv_lora_rank");
  a.q_lora_rank = get_or(k + "attention.q_lora_rank", 0);
  a.qk_rope_head_dim = get(k + "rope.dimension_count");
  const int64_t k_mla = get(k + "attention.key_length_mla");
  a.qk_nope_head_dim = k_mla - a.qk_rope_head_dim;
  a.v_head_dim = get(k + "attention.value_length_mla");
  a.num_rope_heads = 1;
  a.latent_norm = true;
  if (a.qk_rope_head_dim <= 0 || a.qk_rope_head_dim % 2 != 0 || a.qk_nope_head_dim < 0 || a.kv_lora_rank <= 0 ||
      a.v_head_dim <= 0)
    fail("{}: kv_lora_rank {}, key_length_mla {}, rope.dimension_count {}, value_length_mla {} do not make an MLA "
         "layer",
         path, a.kv_lora_rank, k_mla, a.qk_rope_head_dim, a.v_head_dim);
  const int64_t key_len = get_or(k + "attention.key_length", a.kv_lora_rank + a.qk_rope_head_dim);
  const int64_t val_len = get_or(k + "attention.value_length", a.kv_lora_rank);
  if (key_len != a.kv_lora_rank + a.qk_rope_head_dim || val_len != a.kv_lora_rank)
    fail("{}: attention.key_length {} / value_length {} should be kv_lora_rank + rope dims ({}) / kv_lora_rank ({})",
         path, key_len, val_len, a.kv_lora_rank + a.qk_rope_head_dim, a.kv_lora_rank);
  a.softmax_scale = 1.0 / std::sqrt(static_cast<double>(k_mla));
  c.head_dim = a.qk_rope_head_dim;
  c.mla = a;

  const GgufTensorInfo& embd = f.tensor("token_embd.weight");
  if (embd.ne.size() != 2 || embd.ne[0] != c.hidden_size)
    fail("{}: tensor token_embd.weight has shape {}, expected [vocab, {}]", path, shape_str(embd.shape()),
         c.hidden_size);
  c.vocab_size = embd.ne[1];
  c.tie_word_embeddings = !f.has_tensor("output.weight");
  c.bos_token_id = static_cast<int32_t>(get_or("tokenizer.ggml.bos_token_id", 1));
  c.eos_token_id = static_cast<int32_t>(get_or("tokenizer.ggml.eos_token_id", 2));
  if (c.bos_token_id >= c.vocab_size) c.bos_token_id = 0;
  if (c.eos_token_id >= c.vocab_size) c.eos_token_id = 0;
  c.validate(path);

  Model m;
  m.source = path;
  m.format = "gguf-deepseek2";
  m.config = c;
  std::set<std::string> used;
  auto load = [&](const std::string& name, const Shape& expect) {
    const GgufTensorInfo& t = f.tensor(name);
    if (t.shape() != expect)
      fail("{}: tensor {} has shape {}, expected {}", path, name, shape_str(t.shape()), shape_str(expect));
    used.insert(name);
    return f.read_tensor(t);
  };
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, H = c.num_heads, r = a.kv_lora_rank;
  const int64_t dn = a.qk_nope_head_dim, dr = a.qk_rope_head_dim, dv = a.v_head_dim, q_rows = H * (dn + dr);
  ModelWeights& W = m.weights;
  W.embed = load("token_embd.weight", {V, D});
  W.final_norm = load("output_norm.weight", {D});
  if (!c.tie_word_embeddings) W.lm_head = load("output.weight", {V, D});
  // Layers are added as their tensors are read: block_count alone (up to 2^30) must
  // not allocate anything.
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& L = W.layers.emplace_back();
    MlaLayerWeights& x = L.mla;
    auto t = [&](const char* n, const Shape& s) { return load(fmt::format("blk.{}.{}.weight", i, n), s); };
    L.attn_norm = t("attn_norm", {D});
    if (a.q_lora_rank > 0) {
      x.wq_a = t("attn_q_a", {a.q_lora_rank, D});
      x.q_a_norm = t("attn_q_a_norm", {a.q_lora_rank});
      x.wq_b = t("attn_q_b", {q_rows, a.q_lora_rank});
    } else {
      x.wq = t("attn_q", {q_rows, D});
    }
    const Tensor kv_a = t("attn_kv_a_mqa", {r + dr, D});
    x.w_dkv = Tensor({r, D}, std::vector<float>(kv_a.data.begin(), kv_a.data.begin() + r * D));
    x.w_kr = Tensor({dr, D}, std::vector<float>(kv_a.data.begin() + r * D, kv_a.data.end()));
    x.kv_norm = t("attn_kv_a_norm", {r});
    const Tensor k_b = t("attn_k_b", {H, r, dn});  // k_b[h] = W_uk[h]^T
    if (dn > 0) {
      x.w_uk = Tensor({H * dn, r});
      for (int64_t h = 0; h < H; ++h)
        for (int64_t n = 0; n < dn; ++n)
          for (int64_t j = 0; j < r; ++j)
            x.w_uk.ptr()[(h * dn + n) * r + j] = k_b.data[static_cast<size_t>((h * r + j) * dn + n)];
    }
    const Tensor v_b = t("attn_v_b", {H, dv, r});
    x.w_uv = Tensor({H * dv, r}, v_b.data);
    x.wo = t("attn_output", {D, H * dv});
    L.ffn_norm = t("ffn_norm", {D});
    L.w_gate = t("ffn_gate", {F, D});
    L.w_up = t("ffn_up", {F, D});
    L.w_down = t("ffn_down", {D, F});
  }
  for (const auto& ti : f.tensors())
    if (!used.count(ti.name)) fail("{}: unexpected tensor {} (not part of a dense deepseek2 model)", path, ti.name);
  check_weight_shapes(m.config, W, path);

  if (auto vocab = read_gguf_spm_vocab(f)) {
    if (static_cast<int64_t>(vocab->pieces.size()) > V)
      fail("{}: tokenizer.ggml.tokens has {} tokens but token_embd.weight has {} rows", path, vocab->pieces.size(), V);
    if (md.contains("tokenizer.ggml.remove_extra_whitespaces"))
      vocab->remove_extra_whitespaces = md.get_bool("tokenizer.ggml.remove_extra_whitespaces");
    m.tokenizer = make_spm_vocab_tokenizer(std::move(*vocab), path);
  } else if (auto bpe = read_gguf_bpe_tokenizer(f)) {
    if (bpe->vocab_size() > V)
      fail("{}: tokenizer.ggml.tokens has {} tokens but token_embd.weight has {} rows", path, bpe->vocab_size(), V);
    m.tokenizer = std::move(bpe);
  }
  return m;
}

}  // namespace mlar
