// Writing GGUF deepseek2 files (MLA.md §5) for llama.cpp.
#include <algorithm>
#include <deque>

#include <fmt/format.h>

#include "io/deepseek_export.h"
#include "io/gguf_bpe_vocab.h"
#include "io/gguf_deepseek2.h"
#include "io/gguf_stream.h"
#include "io/gguf_writer.h"
#include "io/safetensors.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {

void write_gguf_deepseek2(const Model& m, const fs::path& path, const DeepseekExportOptions& opts, bool force,
                          std::vector<std::string>* notes) {
  const std::string src = m.source.empty() ? path.string() : m.source;
  check_deepseek_layout(m.config, DeepseekFormat::GgufDeepseek2, src);
  check_weight_shapes(m.config, m.weights, src);
  write_gguf_deepseek2_layers(m, [&](int64_t l) { return m.weights.layers[static_cast<size_t>(l)]; }, path, opts,
                              force, notes);
}

void write_gguf_deepseek2_layers(const Model& m, const DeepseekLayerSource& layer, const fs::path& path,
                                 const DeepseekExportOptions& opts, bool force, std::vector<std::string>* notes) {
  const std::string src = m.source.empty() ? path.string() : m.source;
  const DType dtype = parse_write_dtype(opts.dtype, path.string());
  const GgmlType mat = dtype == DType::F16 ? GgmlType::F16 : dtype == DType::BF16 ? GgmlType::BF16 : GgmlType::F32;
  const ModelConfig& c = m.config;
  check_deepseek_layout(c, DeepseekFormat::GgufDeepseek2, src);
  c.validate(src);
  if (m.weights.embed.shape != Shape{c.vocab_size, c.hidden_size} || m.weights.final_norm.shape != Shape{c.hidden_size} ||
      (!c.tie_word_embeddings && m.weights.lm_head.shape != Shape{c.vocab_size, c.hidden_size}))
    fail("{}: embedding, final norm or output head do not match the config", src);
  const MlaConfig& a = *c.mla;
  const int64_t D = c.hidden_size, H = c.num_heads, r = a.kv_lora_rank, dr = a.qk_rope_head_dim;
  const int64_t dn = a.qk_nope_head_dim, dv = a.v_head_dim;
  auto u32 = [&](int64_t v, const char* what) {
    if (v < 0 || v > int64_t{UINT32_MAX}) fail("{}: {} = {} does not fit GGUF's uint32", src, what, v);
    return static_cast<uint32_t>(v);
  };

  if (c.tie_word_embeddings && notes)
    notes->push_back("tied output head written as output.weight, a copy of token_embd.weight (llama.cpp's deepseek2 "
                     "loader requires it)");
  GgufWriter w;
  const std::string k = "deepseek2.";
  w.set("general.architecture", "deepseek2");
  w.set("general.name", fs::path(src).filename().string());
  w.set("general.file_type", uint32_t{dtype == DType::F16 ? 1u : dtype == DType::BF16 ? 32u : 0u});
  w.set(k + "vocab_size", u32(c.vocab_size, "vocab_size"));
  w.set(k + "context_length", u32(c.max_position_embeddings, "context_length"));
  w.set(k + "embedding_length", u32(D, "embedding_length"));
  w.set(k + "feed_forward_length", u32(c.intermediate_size, "feed_forward_length"));
  w.set(k + "block_count", u32(c.num_layers, "block_count"));
  w.set(k + "leading_dense_block_count", u32(c.num_layers, "leading_dense_block_count"));
  w.set(k + "attention.head_count", u32(H, "head_count"));
  w.set(k + "attention.head_count_kv", uint32_t{1});  // MLA: one shared [latent | k_pe] row per token
  w.set(k + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.set(k + "attention.q_lora_rank", u32(a.q_lora_rank, "q_lora_rank"));
  w.set(k + "attention.kv_lora_rank", u32(r, "kv_lora_rank"));
  w.set(k + "attention.key_length", u32(r + dr, "key_length"));
  w.set(k + "attention.value_length", u32(r, "value_length"));
  w.set(k + "attention.key_length_mla", u32(dn + dr, "key_length_mla"));
  w.set(k + "attention.value_length_mla", u32(dv, "value_length_mla"));
  w.set(k + "rope.dimension_count", u32(dr, "rope.dimension_count"));
  w.set(k + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set(k + "expert_count", uint32_t{0});
  w.set(k + "expert_used_count", uint32_t{0});
  w.set(k + "expert_shared_count", uint32_t{0});
  w.set(k + "expert_feed_forward_length", u32(c.intermediate_size, "expert_feed_forward_length"));
  w.set(k + "expert_weights_scale", 1.0f);
  w.set(k + "expert_weights_norm", false);

  // Tokenizer: SentencePiece-style as "llama", byte-level BPE as "gpt2", else none.
  std::string why;
  std::optional<SpmVocab> vocab;
  std::optional<GgufBpeVocab> bpe;
  if (m.tokenizer) {
    AtomicDir scratch(path.parent_path() / (path.filename().string() + ".tokenizer"), true);  // never committed
    try {
      vocab = gguf_spm_vocab(*m.tokenizer, scratch.tmp_path(), &why);
    } catch (const Error& e) {  // e.g. pieces that are not UTF-8 cannot go through tokenizer.json
      vocab.reset();
      why = e.what();
    }
    if (!vocab) {
      std::string why_bpe;
      bool byte_level = false;
      bpe = gguf_bpe_vocab(*m.tokenizer, scratch.tmp_path(), c.vocab_size, src, &why_bpe, &byte_level, notes);
      if (!bpe && byte_level) why = why_bpe;
    }
    why = fmt::format("the {} tokenizer is not written as GGUF metadata: {}", m.tokenizer->kind(), why);
  } else {
    why = "the model has no tokenizer (pass --tokenizer)";
  }
  if (vocab && static_cast<int64_t>(vocab->pieces.size()) > c.vocab_size)
    fail("{}: the tokenizer has {} tokens, the embedding {} rows", src, vocab->pieces.size(), c.vocab_size);
  if (vocab) {
    set_gguf_spm_tokenizer(w, *vocab, c.vocab_size);
  } else if (bpe) {
    set_gguf_bpe_tokenizer(w, *bpe);
  } else {
    w.set("tokenizer.ggml.model", "no_vocab");
    if (notes) notes->push_back(why + "; tokenizer.ggml.model is \"no_vocab\" (token ids only)");
  }

  // Tensors: matrices in the chosen dtype, vectors (norms) in F32 as llama.cpp's converter writes them.
  // Written one at a time; each layer is produced, written and dropped.
  GgufStreamWriter out(path, w.metadata(), force);
  auto put = [&](const std::string& name, const TypedTensor& t, GgmlType type) {
    out.add(name, type, std::vector<int64_t>(t.shape.rbegin(), t.shape.rend()), t.empty() ? nullptr : t.data(),
            t.dtype);
  };
  const ModelWeights& W = m.weights;
  auto put_embed = [&](const std::string& name) {
    if (opts.embed_scale != 1.0)
      out.add(name, mat, std::vector<int64_t>(W.embed.shape.rbegin(), W.embed.shape.rend()),
              scaled_chunks(W.embed, opts.embed_scale, dtype));
    else
      put(name, W.embed, mat);
  };
  put_embed("token_embd.weight");
  put("output_norm.weight", W.final_norm, GgmlType::F32);
  // llama.cpp's deepseek2 loader requires output.weight (no tied fallback): a tied
  // head is written as a copy of the embedding.
  if (c.tie_word_embeddings)
    put_embed("output.weight");
  else
    put("output.weight", W.lm_head, mat);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const LayerWeights L = layer(i);
    check_layer_shapes(c, i, L, src);
    const MlaLayerWeights& x = L.mla;
    auto name = [&](const char* t) { return fmt::format("blk.{}.{}.weight", i, t); };
    put(name("attn_norm"), L.attn_norm, GgmlType::F32);
    if (a.q_lora_rank > 0) {
      put(name("attn_q_a"), x.wq_a, mat);
      put(name("attn_q_a_norm"), x.q_a_norm, GgmlType::F32);
      put(name("attn_q_b"), x.wq_b, mat);
    } else {
      put(name("attn_q"), x.wq, mat);
    }
    Tensor kv_a(Shape{r + dr, D});  // rows [latent | k_pe]
    convert_values(x.w_dkv.data(), x.w_dkv.dtype, kv_a.ptr(), DType::F32, r * D);
    convert_values(x.w_kr.data(), x.w_kr.dtype, kv_a.ptr() + r * D, DType::F32, dr * D);
    put(name("attn_kv_a_mqa"), kv_a, mat);
    put(name("attn_kv_a_norm"), x.kv_norm, GgmlType::F32);
    Tensor k_b(Shape{H, r, dn});  // k_b[h] = W_uk[h]^T
    const Tensor uk = x.w_uk.to_f32();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t n = 0; n < dn; ++n)
        for (int64_t j = 0; j < r; ++j)
          k_b.data[static_cast<size_t>((h * r + j) * dn + n)] = uk.data[static_cast<size_t>((h * dn + n) * r + j)];
    put(name("attn_k_b"), k_b, mat);
    TypedTensor v_b = x.w_uv;  // v_b[h] = W_uv[h]
    v_b.shape = {H, dv, r};
    put(name("attn_v_b"), v_b, mat);
    put(name("attn_output"), x.wo, mat);
    put(name("ffn_norm"), L.ffn_norm, GgmlType::F32);
    put(name("ffn_gate"), L.w_gate, mat);
    put(name("ffn_up"), L.w_up, mat);
    put(name("ffn_down"), L.w_down, mat);
    if (opts.progress) opts.progress(i + 1, c.num_layers);
  }
  out.finish();
}

}  // namespace mlar
