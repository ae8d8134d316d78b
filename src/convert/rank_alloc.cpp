#include "convert/rank_alloc.h"

#include <queue>
#include <utility>

#include "util/error.h"

namespace mlar {

std::vector<int64_t> allocate_ranks_by_energy(int64_t per_layer, const std::vector<std::vector<double>>& energy,
                                              int64_t max_rank) {
  const size_t L = energy.size();
  if (per_layer < 1 || per_layer > max_rank) fail("rank allocation: {} per layer outside [1, {}]", per_layer, max_rank);
  std::vector<double> total(L, 0.0);
  for (size_t l = 0; l < L; ++l)
    for (double e : energy[l]) total[l] += e > 0 ? e : 0.0;
  auto gain = [&](size_t l, int64_t k) {  // normalised energy of component k of layer l
    const auto& e = energy[l];
    if (k >= static_cast<int64_t>(e.size()) || total[l] <= 0) return 0.0;
    return e[static_cast<size_t>(k)] > 0 ? e[static_cast<size_t>(k)] / total[l] : 0.0;
  };
  std::vector<int64_t> r(L, 1);
  std::priority_queue<std::pair<double, size_t>> pq;  // (gain of the next component, layer)
  for (size_t l = 0; l < L; ++l) pq.push({gain(l, 1), l});
  int64_t left = (per_layer - 1) * static_cast<int64_t>(L);
  while (left > 0 && !pq.empty()) {
    const size_t l = pq.top().second;
    pq.pop();
    if (r[l] >= max_rank) continue;
    ++r[l];
    --left;
    pq.push({gain(l, r[l]), l});
  }
  return r;
}

}  // namespace mlar
