#include "train/token_batcher.h"

#include <sstream>

#include "util/error.h"

namespace mlar::train {

TokenBatcher::TokenBatcher(std::span<const int32_t> ids, int64_t seq_len, int32_t bos, uint64_t seed)
    : ids_(ids), len_(seq_len), bos_(bos), rng_(seed) {
  if (seq_len < 2) fail("--seq {} is too short (at least 2 tokens)", seq_len);
  if (static_cast<int64_t>(ids.size()) < 2 * seq_len)
    fail("training text has {} tokens, fewer than two sequences of {}", ids.size(), seq_len);
  start_epoch();
}

void TokenBatcher::start_epoch() {
  std::ostringstream os;
  os << rng_;
  epoch_rng_ = os.str();
  offset_ = static_cast<int64_t>(rng_() % static_cast<uint64_t>(len_));
  const int64_t n = (static_cast<int64_t>(ids_.size()) - offset_) / len_;
  order_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order_[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng_() % static_cast<uint64_t>(i + 1));
    std::swap(order_[static_cast<size_t>(i)], order_[static_cast<size_t>(j)]);
  }
  cursor_ = 0;
}

void TokenBatcher::next(int64_t n_seq, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
  inputs.resize(static_cast<size_t>(n_seq * len_));
  targets.resize(static_cast<size_t>(n_seq * len_));
  for (int64_t s = 0; s < n_seq; ++s) {
    if (cursor_ == windows()) {
      ++epoch_;
      start_epoch();
    }
    const int64_t start = offset_ + order_[static_cast<size_t>(cursor_++)] * len_;
    int32_t* in = inputs.data() + s * len_;
    int32_t* tg = targets.data() + s * len_;
    in[0] = bos_;
    for (int64_t t = 0; t < len_; ++t) {
      tg[t] = ids_[static_cast<size_t>(start + t)];
      if (t + 1 < len_) in[t + 1] = tg[t];
    }
  }
}

nlohmann::json TokenBatcher::state() const {
  return {{"rng_at_epoch_start", epoch_rng_}, {"epoch", epoch_}, {"cursor", cursor_}};
}

void TokenBatcher::restore(const nlohmann::json& j) {
  std::istringstream is(j.at("rng_at_epoch_start").get<std::string>());
  is >> rng_;
  if (!is) fail("checkpoint: unreadable data-order generator state");
  epoch_ = j.at("epoch").get<int64_t>();
  start_epoch();  // the same draws as the first time
  const int64_t cursor = j.at("cursor").get<int64_t>();
  if (cursor < 0 || cursor > windows()) fail("checkpoint: data position {} outside the epoch of {} windows", cursor, windows());
  cursor_ = cursor;
}

}  // namespace mlar::train
