// Spreading a total latent rank over layers (--rank-alloc energy): every layer keeps
// at least one component; the rest go greedily to the largest normalised
// eigenvalues energy_l[k] / sum_k energy_l[k] of the layers' latent objectives
// (kv_lowrank.h), so each layer is judged by the fraction of its own objective a
// component holds. The total is per_layer * L; no layer exceeds max_rank.
#pragma once
#include <cstdint>
#include <vector>

namespace mlar {

std::vector<int64_t> allocate_ranks_by_energy(int64_t per_layer, const std::vector<std::vector<double>>& energy,
                                              int64_t max_rank);

}  // namespace mlar
