// Shared fixtures of the runtime tests: small random configs, the stories260K model
// and its SentencePiece tokenizer (libsentencepiece directly), logit comparisons.
#pragma once
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_data.h"
#include "io/llama2c.h"
#include "model/model.h"
#include "tensor/tensor.h"

namespace mlar::test {

inline ModelConfig small_config(RopeLayout layout = RopeLayout::Half) {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 8;  // q_dim 48 == hidden here; tests also vary it
  c.rope_layout = layout;
  c.max_position_embeddings = 128;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

inline const Model& stories260k() {
  static const Model m = read_llama2c(data_path("models/stories260K/stories260K.bin"));
  return m;
}

inline const sentencepiece::SentencePieceProcessor& stories_sp() {
  static const auto* sp = [] {
    auto* p = new sentencepiece::SentencePieceProcessor();
    const auto st = p->Load(data_path("models/stories260K/tok512.model"));
    if (!st.ok()) throw std::runtime_error("sentencepiece load: " + st.ToString());
    return p;
  }();
  return *sp;
}

inline std::vector<int32_t> sp_encode(const std::string& text) {
  std::vector<int> ids;
  const auto st = stories_sp().Encode(text, &ids);
  if (!st.ok()) throw std::runtime_error("sentencepiece encode: " + st.ToString());
  return {ids.begin(), ids.end()};
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// max |a - b| / max |b| over all entries (b: the reference, [rows][V]).
inline double max_rel_diff(const Tensor& a, const std::vector<std::vector<double>>& b, int64_t first_row = 0) {
  double diff = 0, scale = 0;
  const int64_t V = a.shape.back();
  for (int64_t r = 0; r < a.dim(0); ++r)
    for (int64_t i = 0; i < V; ++i) {
      const double ref = b[size_t(first_row + r)][size_t(i)];
      diff = std::max(diff, std::abs(double(a.data[r * V + i]) - ref));
      scale = std::max(scale, std::abs(ref));
    }
  return diff / scale;
}

inline double max_rel_diff(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 0;
  EXPECT_EQ(a.shape, b.shape);
  for (int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i) {
    diff = std::max(diff, double(std::abs(a.data[i] - b.data[i])));
    scale = std::max(scale, double(std::abs(b.data[i])));
  }
  return diff / scale;
}

}  // namespace mlar::test
