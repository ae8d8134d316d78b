// Shared helpers for the safetensors / HF directory tests.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "model/model.h"
#include "tensor/tensor.h"
#include "util/error.h"

// EXPECT that the string `msg` contains `sub` (gmock is not linked).
#define EXPECT_HAS(msg, sub)                                                  \
  do {                                                                        \
    const std::string msg_ = (msg);                                           \
    EXPECT_NE(msg_.find(sub), std::string::npos)                              \
        << "message: " << msg_ << "\nexpected it to contain: " << (sub);      \
  } while (0)

namespace mlar::test {

inline Tensor random_tensor(Shape s, uint32_t seed, float scale = 1.0f) {
  Tensor t(std::move(s));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  for (float& x : t.data) x = nd(rng);
  return t;
}

// Raw bytes to a file (for hand-made, possibly broken safetensors files).
inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// u64 LE header size + header + data, with no padding (as other writers may do).
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

inline std::string f32_bytes(std::initializer_list<float> v) {
  std::string s;
  for (float x : v) s.append(reinterpret_cast<const char*>(&x), 4);
  return s;
}

// The message of the mlar::Error `f` throws ("" and a test failure if none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-mlar exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an mlar::Error";
  return "";
}

// A small random model of `c`'s shape (biases if c.attention_bias, lm_head unless tied).
inline Model random_model(const ModelConfig& c, uint32_t seed = 1) {
  Model m;
  m.config = c;
  m.source = "random";
  m.format = "test";
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  auto& w = m.weights;
  uint32_t s = seed * 1000;
  w.embed = random_tensor({V, D}, s++);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights L;
    L.attn_norm = random_tensor({D}, s++);
    L.wq = random_tensor({c.q_dim(), D}, s++);
    L.wk = random_tensor({c.kv_dim(), D}, s++);
    L.wv = random_tensor({c.kv_dim(), D}, s++);
    L.wo = random_tensor({D, c.q_dim()}, s++);
    if (c.attention_bias) {
      L.bq = random_tensor({c.q_dim()}, s++);
      L.bk = random_tensor({c.kv_dim()}, s++);
      L.bv = random_tensor({c.kv_dim()}, s++);
    }
    L.ffn_norm = random_tensor({D}, s++);
    L.w_gate = random_tensor({F, D}, s++);
    L.w_up = random_tensor({F, D}, s++);
    L.w_down = random_tensor({D, F}, s++);
    w.layers.push_back(std::move(L));
  }
  w.final_norm = random_tensor({D}, s++);
  if (!c.tie_word_embeddings) w.lm_head = random_tensor({V, D}, s++);
  return m;
}

inline ModelConfig small_config() {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 48;
  c.hidden_size = 32;
  c.intermediate_size = 40;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = 128;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

}  // namespace mlar::test
