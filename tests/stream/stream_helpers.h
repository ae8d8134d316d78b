// Shared helpers of the streaming-writer tests.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tensor/tensor.h"
#include "util/write_fault.h"

#define EXPECT_HAS(msg, sub)                                             \
  do {                                                                   \
    const std::string msg_ = (msg);                                      \
    EXPECT_NE(msg_.find(sub), std::string::npos)                         \
        << "message: " << msg_ << "\nexpected it to contain: " << (sub); \
  } while (0)

namespace mlar::test {

inline Tensor random_tensor(Shape s, uint32_t seed, float scale = 1.0f) {
  Tensor t(std::move(s));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  for (float& x : t.data) x = nd(rng);
  return t;
}

inline std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << p;
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Names in `dir`, sorted.
inline std::vector<std::string> dir_entries(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Disarms the write fault when a test ends, whatever happens.
struct FaultReset {
  ~FaultReset() { set_write_fault_after_bytes(-1); }
};

}  // namespace mlar::test
