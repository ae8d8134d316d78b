#include "model/kv_footprint.h"

#include <nlohmann/json.hpp>

namespace mlar {

KvFootprint kv_footprint(const ModelConfig& c, DType dtype) {
  KvFootprint f;
  for (int64_t l = 0; l < c.num_layers; ++l) f.values_per_token += c.kv_values_per_token_layer(l);
  f.layers = c.num_layers;
  f.dtype = dtype;
  f.bytes_per_value = static_cast<int64_t>(dtype_size(dtype));
  f.max_context = c.max_position_embeddings;
  return f;
}

nlohmann::json kv_footprint_json(const KvFootprint& f) {
  return {{"dtype", dtype_flag_name(f.dtype)},
          {"values_per_token_per_layer", f.values_per_token_layer()},
          {"values_per_token", f.values_per_token},
          {"bytes_per_value", f.bytes_per_value},
          {"bytes_per_token_per_layer", f.bytes_per_token_layer()},
          {"bytes_per_token", f.bytes_per_token()},
          {"max_context", f.max_context},
          {"bytes_at_max_context", f.bytes_at_max_context()}};
}

}  // namespace mlar
