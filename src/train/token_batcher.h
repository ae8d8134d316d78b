// Batches of training sequences cut from a tokenized text, in a seeded order.
//
// The ids (no BOS) are cut into windows of L tokens. Each epoch draws, from a
// std::mt19937_64 (raw 64-bit outputs only, so the order is the same everywhere),
// an offset in [0, L) where the first window starts and a Fisher-Yates permutation
// of the windows. A window t_s .. t_{s+L-1} becomes the sequence
//   inputs  [BOS, t_s, .., t_{s+L-2}]     (positions 0 .. L-1)
//   targets [t_s, .., t_{s+L-1}]
// the layout the perplexity protocol scores (runtime/perplexity.h). Batches take
// consecutive windows of the permutation and run on into the next epoch.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mlar::train {

class TokenBatcher {
 public:
  // Throws mlar::Error when the text has fewer than 2 L tokens.
  TokenBatcher(std::span<const int32_t> ids, int64_t seq_len, int32_t bos, uint64_t seed);

  // n_seq sequences: inputs and targets [n_seq * L], sequence-major.
  void next(int64_t n_seq, std::vector<int32_t>& inputs, std::vector<int32_t>& targets);

  int64_t epoch() const { return epoch_; }
  int64_t windows() const { return static_cast<int64_t>(order_.size()); }  // in this epoch

  // Everything needed to continue the exact same stream: the generator's state at
  // the start of the current epoch (std::mt19937_64 text form), the epoch and the
  // position in it.
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);

 private:
  void start_epoch();  // draws offset and order from rng_

  std::span<const int32_t> ids_;
  int64_t len_;
  int32_t bos_;
  std::mt19937_64 rng_;
  std::string epoch_rng_;  // rng_ state before start_epoch() drew from it
  int64_t epoch_ = 0, cursor_ = 0, offset_ = 0;
  std::vector<int64_t> order_;  // window indices of this epoch
};

}  // namespace mlar::train
