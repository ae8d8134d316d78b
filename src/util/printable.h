// User-supplied strings made safe to print in one error line.
#pragma once
#include <cstddef>
#include <string>

namespace mlar {

// Control bytes as \xNN, cut to max_len bytes with "..." (names from files can be anything).
std::string printable(const std::string& s, size_t max_len = 200);

}  // namespace mlar
