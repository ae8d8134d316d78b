// Reading model weights (TypedTensor, any float dtype) in tests: their float32 values,
// and the exactness check of two tensors that should be the same (shape, dtype, bytes).
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tensor/typed_tensor.h"

namespace mlar::test {

// The float32 values of `t` (widened exactly from BF16/F16; empty for an empty tensor).
inline std::vector<float> f32_values(const TypedTensor& t) { return t.to_f32().data; }

// Same shape, same dtype, same bytes.
inline void expect_identical(const TypedTensor& a, const TypedTensor& b, const std::string& what = "") {
  SCOPED_TRACE(what);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_STREQ(dtype_name(a.dtype), dtype_name(b.dtype));
  EXPECT_EQ(a.empty(), b.empty());
  if (a.shape != b.shape || a.dtype != b.dtype || a.empty() || b.empty()) return;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0) << "bytes differ";
}

}  // namespace mlar::test
