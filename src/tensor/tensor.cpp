#include "tensor/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "util/error.h"

namespace mlar {

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Tensor::Tensor(Shape s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {
  if (static_cast<int64_t>(data.size()) != shape_numel(shape))
    fail("tensor of shape {} given {} values", shape_str(shape), data.size());
}

}  // namespace mlar
