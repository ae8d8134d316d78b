// The tensors of a model as named training parameters, their gradients, and which
// of them a run trains.
#pragma once
#include <string>
#include <vector>

#include "model/weights.h"

namespace mlar::train {

// What a run trains: the attention tensors only (the converted part: GQA wq..bv, or
// every MLA tensor), or every tensor of the model.
enum class TrainScope { Attention, All };
const char* train_scope_name(TrainScope s);  // "attn", "all"

// One tensor slot of a ModelWeights, empty or not.
struct TensorSlot {
  std::string name;  // "embed", "layers.3.attn_norm", "layers.3.wq", "layers.3.mla.w_dkv", "lm_head", ...
  TypedTensor* tensor = nullptr;
  bool attention = false;  // part of an attention block (not its input norm)
};

// Every slot of w in a fixed order (layers in order), empty ones included, so that
// the slots of two ModelWeights with the same layer count line up.
std::vector<TensorSlot> tensor_slots(ModelWeights& w);

// The slots of one layer, named prefix + "attn_norm", prefix + "mla.w_dkv", ...
std::vector<TensorSlot> layer_tensor_slots(LayerWeights& L, const std::string& prefix = "");

// Gradient storage for w: zero tensors of the same shapes for the tensors `scope`
// trains, empty tensors elsewhere (the backward skips those).
ModelWeights make_gradients(const ModelWeights& w, TrainScope scope);

// Sets every non-empty tensor of g to zero.
void zero_gradients(ModelWeights& g);

struct Param {
  std::string name;
  TypedTensor* value = nullptr;
  TypedTensor* grad = nullptr;
  bool decay = false;  // weight decay applies (matrices; not norms or biases)
};

// The trained tensors: slots of w whose gradient slot in g is non-empty.
std::vector<Param> trainable_params(ModelWeights& w, ModelWeights& g);

int64_t param_count(const std::vector<Param>& p);

}  // namespace mlar::train
