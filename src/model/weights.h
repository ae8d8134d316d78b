// The tensors of a GQA decoder (Llama, Qwen2, Qwen3, Mistral), HF [out, in] layout.
// Row order of wq/wk (and bq/bk, and the entries of q_norm/k_norm) follows
// ModelConfig::rope_layout.
#pragma once
#include <vector>

#include "model/config.h"
#include "model/mla.h"
#include "tensor/typed_tensor.h"

namespace mlar {

struct LayerWeights {
  TypedTensor attn_norm;  // [D]
  TypedTensor wq;         // [n_h * d, D]
  TypedTensor wk;         // [n_kv * d, D]
  TypedTensor wv;         // [n_kv * d, D]
  TypedTensor wo;         // [D, n_h * d]
  TypedTensor bq, bk, bv;  // Qwen2 only: [n_h * d], [n_kv * d], [n_kv * d]; empty otherwise
  TypedTensor q_norm, k_norm;  // Qwen3 (config.qk_norm) only: [d] each, shared by every head
  TypedTensor ffn_norm;   // [D]
  TypedTensor w_gate;     // [F, D]
  TypedTensor w_up;       // [F, D]
  TypedTensor w_down;     // [D, F]
  MlaLayerWeights mla;  // MLA models only (then wq..bv above are empty)
};

struct ModelWeights {
  TypedTensor embed;  // [V, D]
  std::vector<LayerWeights> layers;
  TypedTensor final_norm;  // [D]
  TypedTensor lm_head;     // [V, D]; empty when the embedding is tied

  const TypedTensor& output() const { return lm_head.empty() ? embed : lm_head; }
};

// Throws "<source>: tensor <name> has shape X, expected Y" on any mismatch.
void check_weight_shapes(const ModelConfig& c, const ModelWeights& w, const std::string& source);

// One layer's tensors (GQA or MLA as the config says, MLP and norms).
void check_layer_shapes(const ModelConfig& c, int64_t layer, const LayerWeights& L, const std::string& source);

// The MLA tensors of one layer against config.mla (MLA.md §2).
void check_mla_layer_shapes(const ModelConfig& c, int64_t layer, const MlaLayerWeights& w, const std::string& source);

int64_t parameter_count(const ModelWeights& w);

// The dtype the model's matrices are stored in (that of the embedding): what outputs
// keep by default.
DType weight_dtype(const ModelWeights& w);

// Every non-empty tensor as owned float32 (mutable): for code that rewrites weights
// (conversion steps, training). Views of a mapped file are copied, BF16/F16 widened.
void materialize_f32(MlaLayerWeights& w);
void materialize_f32(LayerWeights& w);
void materialize_f32(ModelWeights& w);

// Every matrix (2-D or more) stored as `dtype` (F32 | BF16 | F16, rounded to nearest
// even); vectors (norms, biases) stay F32. For benchmarks and for writing a model in
// a smaller dtype in memory.
void cast_matrices(ModelWeights& w, DType dtype);

// Bytes of every tensor as stored.
int64_t weight_bytes(const ModelWeights& w);

// Every tensor slot of a layer (empty ones included), for code that treats them alike.
std::vector<TypedTensor*> layer_tensors(LayerWeights& w);

// Rows of a q/k projection (or bias) for heads of size d, permuted between layouts:
// to_half: interleaved (2i, 2i+1) -> half (i, i + d/2); !to_half: the inverse.
// Works on [n_heads * d, in] matrices and [n_heads * d] vectors.
TypedTensor permute_rope_rows(const TypedTensor& t, int64_t head_dim, bool to_half);

// Converts every q/k row of the model to `target` layout (no-op if already there).
void convert_rope_layout(ModelConfig& c, ModelWeights& w, RopeLayout target);

}  // namespace mlar
