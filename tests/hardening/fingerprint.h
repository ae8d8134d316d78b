// What a hardening test compares before and after a failed run: the size and a
// cheap content hash of every file under a path.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mlar::test {

// Size and a cheap content hash of every file under `p`.
inline std::string fingerprint(const std::filesystem::path& p) {
  namespace fs = std::filesystem;
  std::string out;
  std::vector<fs::path> files;
  if (fs::is_directory(p)) {
    for (auto& e : fs::recursive_directory_iterator(p))
      if (e.is_regular_file()) files.push_back(e.path());
  } else {
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    uint64_t h = 1469598103934665603ull;
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount())
      for (std::streamsize i = 0; i < in.gcount(); ++i) h = (h ^ static_cast<unsigned char>(buf[i])) * 1099511628211ull;
    out += f.filename().string() + ":" + std::to_string(fs::file_size(f)) + ":" + std::to_string(h) + "\n";
  }
  return out;
}

}  // namespace mlar::test
