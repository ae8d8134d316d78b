// Shared pieces of the hardening tests: what they compare before and after a failed
// run (the size and a cheap content hash of every file under a path), and the small
// MLA model export takes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/config.h"

namespace mlar::test {

// c with a DeepSeek-layout MLA config (one rope key, latent norm) of the given sizes:
// a model export takes, for the hardening tests.
inline ModelConfig with_deepseek_mla(ModelConfig c, int64_t rank, int64_t nope, int64_t rope, int64_t v) {
  MlaConfig a;
  a.rope_mode = RopeMode::Extend;
  a.kv_lora_rank = rank;
  a.qk_nope_head_dim = nope;
  a.qk_rope_head_dim = rope;
  a.num_rope_heads = 1;
  a.v_head_dim = v;
  a.latent_norm = true;
  a.softmax_scale = 1.0 / std::sqrt(static_cast<double>(nope + rope));
  c.mla = a;
  return c;
}

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
