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

#include "safetensors/helpers.h"  // EXPECT_HAS, random_tensor
#include "tensor/tensor.h"
#include "util/write_fault.h"

namespace mlar::test {

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
