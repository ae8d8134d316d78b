// KV-cache accounting: values and bytes cached per token, per layer and for the
// whole model, and at the maximum context.
#pragma once
#include <cstdint>

#include <nlohmann/json_fwd.hpp>

#include "model/config.h"
#include "tensor/dtype.h"

namespace mlar {

struct KvFootprint {
  int64_t values_per_token = 0;  // summed over layers (GQA: L * 2 * n_kv * d; MLA: sum of r_l + n_r * d_r)
  int64_t layers = 0;
  DType dtype = DType::F32;  // how the values are stored
  int64_t bytes_per_value = 4;
  int64_t max_context = 0;

  // Mean over layers (exact when every layer caches the same).
  double values_per_token_layer() const { return layers ? static_cast<double>(values_per_token) / layers : 0; }
  double bytes_per_token_layer() const { return values_per_token_layer() * bytes_per_value; }
  int64_t bytes_per_token() const { return values_per_token * bytes_per_value; }
  int64_t bytes_at_max_context() const { return bytes_per_token() * max_context; }
};

// The cache of `c` as it is (GQA or MLA), values stored as `dtype` (F32, or BF16 / F16
// as serving engines keep them; the runtime caches any of the three).
KvFootprint kv_footprint(const ModelConfig& c, DType dtype);

nlohmann::json kv_footprint_json(const KvFootprint& f);

}  // namespace mlar
