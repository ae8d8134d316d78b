// llama2.c checkpoints (.bin): 7 int32 (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size (negative: separate classifier), seq_len), then float32
// tensors in a fixed order. Interleaved RoPE, theta 10000, eps 1e-5.
#pragma once
#include <string>

#include "model/model.h"

namespace mlar {

// Reads weights and config (no tokenizer: llama2.c keeps it in a separate tok*.bin).
Model read_llama2c(const std::string& path);

}  // namespace mlar
