// Reusable scratch buffers for forward passes, so decode steps do not allocate.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mlar {

class Workspace {
 public:
  // At least n floats for `slot` (contents unspecified). The pointer stays valid
  // until the same slot is asked for more floats than it holds.
  float* get(size_t slot, int64_t n) {
    if (slot >= bufs_.size()) bufs_.resize(slot + 1);
    auto& b = bufs_[slot];
    if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
    return b.data();
  }
  // The same for integers (positions, ids), in slots of their own.
  int64_t* get_i64(size_t slot, int64_t n) {
    if (slot >= ints_.size()) ints_.resize(slot + 1);
    auto& b = ints_[slot];
    if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
    return b.data();
  }
  int64_t bytes() const {
    int64_t s = 0;
    for (const auto& b : bufs_) s += static_cast<int64_t>(b.size() * sizeof(float));
    for (const auto& b : ints_) s += static_cast<int64_t>(b.size() * sizeof(int64_t));
    return s;
  }

 private:
  std::vector<std::vector<float>> bufs_;
  std::vector<std::vector<int64_t>> ints_;
};

}  // namespace mlar
