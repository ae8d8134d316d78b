// Errors the toolkit reports to users: one line naming the file and the problem.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace mlar {

// Thrown for bad input or bad arguments. what() is the whole user-facing line,
// e.g. "model.safetensors: tensor 'x' data_offsets [0, 12) do not match shape [4] of F32".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// fail("{}: bad header", path) formats and throws mlar::Error.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace mlar
