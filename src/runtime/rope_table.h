// RoPE inverse frequencies from a model's configuration (MLA.md §1):
// w_i = theta^(-2i/dim), i in [0, dim/2), then the config's rope_scaling applied:
//   linear: w_i / factor
//   llama3: as transformers' _compute_llama3_parameters: wavelength 2*pi/w_i below
//           original_max_position/high_freq_factor keeps w_i, above
//           original_max_position/low_freq_factor takes w_i/factor, and in between
//           s = (original_max_position/wavelength - low)/(high - low) blends
//           (1-s) * w_i/factor + s * w_i.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "ops/rope.h"

namespace mlar {

// dim/2 inverse frequencies for RoPE over `dim` coordinates (dim even). Computed in
// double, returned as float.
std::vector<float> rope_inv_freq(double theta, int64_t dim, const RopeScaling& scaling);

// The model's table: rope_inv_freq(c.rope_theta, c.head_dim, c.rope_scaling).
std::vector<float> rope_inv_freq(const ModelConfig& c);

// The op-level pairing of a model's layout.
ops::RopePairs rope_pairs(RopeLayout layout);

}  // namespace mlar
