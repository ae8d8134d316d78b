// A dense float32 tensor, row-major, outermost dimension first. Weights follow the
// Hugging Face convention [out, in], so a projection is y = W x.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mlar {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[4, 8]"
int64_t shape_numel(const Shape& s);

struct Tensor {
  Shape shape;
  std::vector<float> data;  // numel() floats

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), data(static_cast<size_t>(shape_numel(shape)), 0.0f) {}
  Tensor(Shape s, std::vector<float> d);  // checks d.size() == numel

  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t dim(size_t i) const { return shape.at(i); }
  int ndim() const { return static_cast<int>(shape.size()); }
  bool empty() const { return data.empty(); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  // Row r of a 2-D tensor.
  float* row(int64_t r) { return data.data() + r * shape.back(); }
  const float* row(int64_t r) const { return data.data() + r * shape.back(); }
};

}  // namespace mlar
