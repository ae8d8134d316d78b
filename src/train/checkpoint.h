// Training checkpoints: a directory holding
//   state.json          {"format": "mla-retrofit-finetune-checkpoint", "version": 1,
//                         "step", "options", "data", "params": [names], ...}
//   tensors.safetensors  F32: "param/<name>", "adam_m/<name>", "adam_v/<name>" for
//                        every trained tensor (bit-exact float32)
// written under a temporary name and renamed into place (util/atomic_output.h), so
// an interruption leaves either the previous checkpoint or the new one.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"
#include "train/adamw.h"

namespace mlar::train {

inline constexpr const char* kCheckpointFormat = "mla-retrofit-finetune-checkpoint";
inline constexpr int kCheckpointVersion = 1;

// Writes (replacing) the checkpoint directory `dir`: `state` (format, version and
// the parameter names are added) and the optimizer's parameters and moments.
void write_checkpoint(const std::filesystem::path& dir, nlohmann::json state, AdamW& opt);

// True when `dir` holds a checkpoint's state.json.
bool checkpoint_exists(const std::filesystem::path& dir);

// Reads state.json (checking format and version).
nlohmann::json read_checkpoint_state(const std::filesystem::path& dir);

// The number of updates the checkpoint in `dir` holds.
int64_t read_checkpoint_step(const std::filesystem::path& dir);

// Loads parameters and moments into `opt` (its parameters must have the names and
// shapes the checkpoint lists, in the same order) and sets its step count to
// state["step"]. Throws mlar::Error naming what differs.
void load_checkpoint_tensors(const std::filesystem::path& dir, const nlohmann::json& state, AdamW& opt);

}  // namespace mlar::train
