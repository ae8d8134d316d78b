#include "io/llama2c.h"

#include <cstring>

#include "util/error.h"
#include "util/mapped_file.h"

namespace mlar {

Model read_llama2c(const std::string& path) {
  MappedFile f(path);
  constexpr size_t kHeader = 7 * sizeof(int32_t);
  if (f.size() < kHeader) fail("{}: truncated llama2.c header ({} bytes, need {})", path, f.size(), kHeader);
  int32_t h[7];
  std::memcpy(h, f.data(), kHeader);
  const int64_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv = h[4], seq_len = h[6];
  const bool shared = h[5] > 0;
  const int64_t vocab = h[5] > 0 ? h[5] : -static_cast<int64_t>(h[5]);

  Model m;
  m.source = path;
  m.format = "llama2c";
  ModelConfig& c = m.config;
  c.arch = "llama";
  c.vocab_size = vocab;
  c.hidden_size = dim;
  c.intermediate_size = hidden;
  c.num_layers = n_layers;
  c.num_heads = n_heads;
  c.num_kv_heads = n_kv;
  c.max_position_embeddings = seq_len;
  c.rope_layout = RopeLayout::Interleaved;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = shared;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  // Reject absurd headers before any arithmetic on them can overflow.
  for (int i = 0; i < 7; ++i)
    if (i != 5 && (h[i] <= 0 || h[i] > (1 << 24)))
      fail("{}: not a llama2.c checkpoint (header field {} is {})", path, i, h[i]);
  if (vocab <= 0 || vocab > (1 << 24)) fail("{}: not a llama2.c checkpoint (vocab_size {})", path, h[5]);
  if (dim % n_heads != 0) fail("{}: n_heads ({}) does not divide dim ({})", path, n_heads, dim);
  c.head_dim = dim / n_heads;
  c.validate(path);

  const int64_t D = dim, F = hidden, L = n_layers, hs = c.head_dim, kv = c.kv_dim(), qd = c.q_dim();
  // Header fields up to 2^24 can describe more than 2^63 floats: check in double first.
  const double approx =
      (static_cast<double>(vocab) * (shared ? 1 : 2) + L * (2.0 + 3.0 * F) + 2.0 * L * qd + 2.0 * L * kv + 1) * D +
      static_cast<double>(seq_len) * hs;
  if (approx * sizeof(float) > 0x1p62)
    fail("{}: not a llama2.c checkpoint (header dim {}, hidden {}, layers {}, vocab {}: impossibly large)", path, dim,
         hidden, n_layers, vocab);
  const int64_t n_floats = vocab * D + L * D + L * qd * D + 2 * L * kv * D + L * D * qd + L * D + 3 * L * F * D + D +
                           seq_len * hs  // freq_cis_real + freq_cis_imag, each [seq_len, hs/2]
                           + (shared ? 0 : vocab * D);
  const size_t expected = kHeader + static_cast<size_t>(n_floats) * sizeof(float);
  if (f.size() != expected)
    fail("{}: file is {} bytes, the header (dim {}, hidden {}, layers {}, heads {}/{}, vocab {}, seq_len {}) needs {}{}",
         path, f.size(), dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len, expected,
         f.size() < expected ? " (truncated)" : " (trailing bytes)");

  const float* p = reinterpret_cast<const float*>(f.data() + kHeader);
  auto take = [&](Shape s) {
    Tensor t(std::move(s));
    std::memcpy(t.ptr(), p, t.data.size() * sizeof(float));
    p += t.data.size();
    return t;
  };
  // Per-kind blocks stacked over layers: read each into every layer in turn.
  auto& W = m.weights;
  W.embed = take({vocab, D});
  W.layers.resize(L);
  for (auto& l : W.layers) l.attn_norm = take({D});
  for (auto& l : W.layers) l.wq = take({qd, D});
  for (auto& l : W.layers) l.wk = take({kv, D});
  for (auto& l : W.layers) l.wv = take({kv, D});
  for (auto& l : W.layers) l.wo = take({D, qd});
  for (auto& l : W.layers) l.ffn_norm = take({D});
  for (auto& l : W.layers) l.w_gate = take({F, D});  // w1
  for (auto& l : W.layers) l.w_down = take({D, F});  // w2
  for (auto& l : W.layers) l.w_up = take({F, D});    // w3
  W.final_norm = take({D});
  p += seq_len * hs;  // precomputed freq_cis, unused
  if (!shared) W.lm_head = take({vocab, D});
  check_weight_shapes(c, W, path);
  return m;
}

}  // namespace mlar
