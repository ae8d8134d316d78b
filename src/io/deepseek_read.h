// Reading what `export` writes (deepseek_export.h) back into the runtime:
// HF DeepSeek-V3 directories and GGUF deepseek2 files, dense models only.
#pragma once
#include <string>

#include "model/model.h"

namespace mlar {

// True when `dir` holds a config.json whose model_type is "deepseek_v3" (false for a
// missing or malformed one: the HF reader reports those).
bool is_deepseek_v3_dir(const std::string& dir);

// The model configuration (with its mla section) that read_deepseek_v3_model takes
// from the text of a DeepSeek-V3 config.json: transformers' defaults for absent
// fields, dense models only, YaRN's mscale folded into the softmax scale. `source`
// names the file in errors.
ModelConfig parse_deepseek_v3_config(const std::string& text, const std::string& source);

// An HF DeepSeek-V3 directory as transformers' DeepseekV3ForCausalLM computes it:
// MLA in the DeepSeek layout (config.mla: rope mode extend, one rope head, latent
// norm), rope rows as stored (rope_interleave true: interleaved; false: half),
// softmax scale 1/sqrt(qk_nope + qk_rope) (times the YaRN mscale^2 transformers
// applies when rope_scaling has mscale_all_dim). transformers builds kv_a_layernorm
// and q_a_layernorm with eps 1e-6 whatever rms_norm_eps says: with another
// rms_norm_eps the latent and q_a projections are rescaled so that the runtime's
// norms (at rms_norm_eps) compute exactly that. GQA-side fields: num_key_value_heads
// = num_attention_heads, head_dim = qk_rope_head_dim. Refused with a clear error:
// mixture-of-experts layers (first_k_dense_replace < num_hidden_layers), RoPE
// scaling other than linear / llama3, num_key_value_heads != num_attention_heads,
// non-zero q_a_proj or o_proj biases (no slot in the runtime), missing or unexpected
// tensors. format is "deepseek-v3".
Model read_deepseek_v3_model(const std::string& dir);

// True when `path` is a GGUF file whose general.architecture is "deepseek2" (false
// when it cannot be parsed: the GGUF reader reports that).
bool is_gguf_deepseek2(const std::string& path);

// A GGUF deepseek2 file in the MLA form (attn_k_b / attn_v_b, head_count_kv 1) as
// llama.cpp computes it: softmax scale 1/sqrt(key_length_mla), every RMSNorm at
// attention.layer_norm_rms_epsilon, interleaved rope rows. The tokenizer comes from
// tokenizer.ggml.* when tokenizer.ggml.model is "llama" or "gpt2". Refused: MoE blocks,
// RoPE scaling, the legacy attn_kv_b form, tensor types other than F32/F16/BF16,
// missing or unexpected tensors. format is "gguf-deepseek2".
Model read_gguf_deepseek2_model(const std::string& path);

}  // namespace mlar
