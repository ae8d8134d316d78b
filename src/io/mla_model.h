// This project's MLA model directories (docs/mla-format.md): an HF-style directory
// whose config.json is the source family's config (hf_config_json) plus
//   "mla": mla_config_to_json(...) + "rope_layout": "half" | "interleaved"
//   "mla_retrofit": {"format_version": 1, "converted_from": {...}}
// model.safetensors (or shards + index) holding the non-attention tensors under
// their HF names and the MLA attention tensors under the names of mla_tensor_name,
// and the tokenizer files (Tokenizer::save_hf).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace mlar {

inline constexpr int kMlaFormatVersion = 1;

// True when `dir` holds a config.json with an "mla" object (a malformed or absent
// config.json gives false: the HF reader reports it).
bool is_mla_model_dir(const std::string& dir);

// One MLA attention tensor of a layer as the format stores it.
struct MlaTensorSlot {
  enum class Presence { Required, Optional, Absent };
  std::string name;                    // "self_attn.kv_a_proj.weight" (after "model.layers.N.")
  TypedTensor MlaLayerWeights::*member;     // where it lives in MlaLayerWeights
  Shape shape;                         // expected shape under the config
  Presence presence;                   // Optional: biases (present or not); Absent: no place for it
};

// Every MLA attention tensor of `layer` under config `c` (c.mla must be set), in
// the order they are written.
std::vector<MlaTensorSlot> mla_layer_slots(const ModelConfig& c, int64_t layer);

// Checks an MLA config against the model config it belongs to (per-layer ranks,
// widths the runtime needs). Throws "<source>: ..." naming what is wrong.
void validate_mla_config(const ModelConfig& c, const std::string& source);

// Reads an MLA directory: config (errors name config.json), weights (F32/F16/BF16 ->
// float32, shapes checked by name, then check_weight_shapes), tokenizer files if
// present. The rope rows stay in the recorded layout. A tensor the config has no
// place for is an error. format is "mla".
Model read_mla_model(const std::string& dir);

struct MlaWriteOptions {
  uint64_t max_shard_bytes = 5ull << 30;  // shard when the weights exceed this
  std::string dtype = "F32";              // F32 | F16 | BF16 on disk
  nlohmann::json converted_from;          // provenance; null = {"path": m.source}
};

// The config.json of an MLA model (c.mla set).
nlohmann::json mla_config_json(const ModelConfig& c, const nlohmann::json& converted_from,
                               const std::string& torch_dtype = "float32");

// Writes `m` (config.mla set, shapes checked) into `dir`, an existing empty
// directory (callers wrap it in AtomicDir): config.json, generation_config.json,
// model.safetensors (or shards + index), tokenizer files when m.tokenizer is set.
void write_mla_model(const Model& m, const std::filesystem::path& dir, const MlaWriteOptions& opts = {});

}  // namespace mlar
