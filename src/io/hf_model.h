// Hugging Face model directories: config.json + model.safetensors (or shards listed
// in model.safetensors.index.json) + tokenizer files.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "model/model.h"

namespace mlar {

// config.json of model_type llama | qwen2 | qwen3 | mistral -> ModelConfig (rope_layout
// Half). qwen3: qk_norm set, attention_bias as the file says (default false),
// head_dim 128 when absent (Qwen3Config's default).
// `source` names the file in errors.
ModelConfig parse_hf_config(const nlohmann::json& j, const std::string& source);

// Reads and parses a config.json file.
ModelConfig read_hf_config(const std::string& path);

// A config.json that transformers' LlamaConfig loads for `c` (LlamaForCausalLM,
// model_type llama, head_dim, rope_scaling in the transformers form, attention_bias).
// `torch_dtype` is written as given (float32, float16, bfloat16). A Mistral
// sliding_window is not carried over (LlamaConfig has none).
nlohmann::json hf_llama_config_json(const ModelConfig& c, const std::string& torch_dtype = "float32");

// Reads an HF directory: config, weights (F32/F16/BF16 -> float32), and the
// tokenizer in it if any (tokenizer.json or tokenizer.model). With tied embeddings
// a stored lm_head.weight is ignored. Qwen3's self_attn.q_norm / k_norm ([head_dim])
// are read into LayerWeights::q_norm / k_norm. Llama's (and Qwen3's) o_proj.bias (attention_bias) is
// accepted only when zero. Errors: "<dir>: missing tensor NAME",
// "<file>: tensor NAME has shape X, expected Y", config errors naming config.json.
Model read_hf_model(const std::string& dir);

struct HfWriteOptions {
  uint64_t max_shard_bytes = 5ull << 30;  // shard when the weights exceed this
  std::string dtype = "F32";              // F32 | F16 | BF16 on disk
};

// Writes `m` as an HF Llama directory (model_type "llama", LlamaForCausalLM) into
// `dir` (an existing, empty directory; callers use AtomicDir around it). q/k rows
// are permuted to the half layout if the model is interleaved. Tokenizer files
// are written through m.tokenizer->save_hf when the model has a tokenizer. With
// attention biases (Qwen2), a zero o_proj.bias is written too, as LlamaAttention's
// attention_bias expects one. A model with q/k norms (Qwen3) is refused: Llama has none. Files: config.json, generation_config.json,
// model.safetensors (or shards + index past max_shard_bytes), each via AtomicFile.
void write_hf_llama(const Model& m, const std::filesystem::path& dir, const HfWriteOptions& opts = {});

// Like write_hf_llama but keeps the model's family (config.arch llama | qwen2 |
// qwen3 | mistral): Qwen2ForCausalLM / Qwen3ForCausalLM / MistralForCausalLM configs,
// Qwen2 q/k/v biases without an o_proj bias, Qwen3 q_norm / k_norm. Used for test fixtures and round trips.
void write_hf_model(const Model& m, const std::filesystem::path& dir, const HfWriteOptions& opts = {});

// config.json for c.arch (llama | qwen2 | qwen3 | mistral). c.qk_norm must hold
// exactly for qwen3.
nlohmann::json hf_config_json(const ModelConfig& c, const std::string& torch_dtype = "float32");

}  // namespace mlar
