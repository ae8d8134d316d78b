// Helpers for the GGUF tests: whole-file I/O, a raw GGUF byte builder for files the
// writer would never produce, a llama GGUF writer with knobs for broken variants,
// and the message of the mlar::Error a call throws.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "io/gguf_writer.h"
#include "model/model.h"
#include "util/error.h"

namespace mlar::test {

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void spit(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The what() of the mlar::Error `fn` throws; a test failure if it throws nothing.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const mlar::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an mlar::Error";
  return "";
}

// Success when `s` contains every one of `parts`.
inline ::testing::AssertionResult contains(const std::string& s, std::initializer_list<std::string> parts) {
  for (const auto& p : parts)
    if (s.find(p) == std::string::npos) return ::testing::AssertionFailure() << "\"" << s << "\" lacks \"" << p << "\"";
  return ::testing::AssertionSuccess();
}
inline ::testing::AssertionResult contains(const std::string& s, const std::string& part) {
  return contains(s, {part});
}

// Little-endian GGUF bytes, written field by field.
struct GgufBytes {
  std::string b;
  GgufBytes& u8(uint8_t v) { return raw(&v, 1); }
  GgufBytes& u32(uint32_t v) { return raw(&v, 4); }
  GgufBytes& u64(uint64_t v) { return raw(&v, 8); }
  GgufBytes& f32(float v) { return raw(&v, 4); }
  GgufBytes& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  GgufBytes& raw(const void* p, size_t n) {
    b.append(static_cast<const char*>(p), n);
    return *this;
  }
  GgufBytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b += "GGUF";
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  GgufBytes& pad(size_t align = 32) {
    while (b.size() % align) b += '\0';
    return *this;
  }
  // A tensor info: name, ne (GGUF order), ggml type, offset.
  GgufBytes& tensor(const std::string& name, std::initializer_list<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
};

// What to write (or break) in write_llama_gguf.
struct LlamaGgufOptions {
  std::string arch = "llama";
  GgmlType type = GgmlType::F32;
  bool tokenizer = true;            // tokenizer.ggml.* from `pieces` below
  bool output = true;               // write output.weight (false: tied)
  std::set<std::string> skip = {};  // tensors left out
  std::string q4_tensor = {};       // this tensor written as Q4_0 (garbage blocks)
  std::function<void(GgufWriter&)> extra = {};  // more metadata/tensors
};

// Writes `m` as llama.cpp lays out a llama GGUF (names, ne order, interleaved q/k).
inline void write_llama_gguf(const Model& m, const std::string& path, const LlamaGgufOptions& o = {}) {
  const ModelConfig& c = m.config;
  GgufWriter w;
  w.set("general.architecture", o.arch);
  w.set("general.name", "test");
  const std::string a = o.arch + ".";
  w.set(a + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.set(a + "embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.set(a + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.set(a + "block_count", static_cast<uint32_t>(c.num_layers));
  w.set(a + "attention.head_count", static_cast<uint32_t>(c.num_heads));
  w.set(a + "attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.set(a + "rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w.set(a + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  if (o.tokenizer) {
    std::vector<std::string> pieces;
    std::vector<float> scores;
    std::vector<int32_t> types;
    for (int64_t i = 0; i < c.vocab_size; ++i) {
      pieces.push_back(i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : "tok" + std::to_string(i));
      scores.push_back(-static_cast<float>(i));
      types.push_back(i == 0 ? 2 : i < 3 ? 3 : 1);
    }
    w.set("tokenizer.ggml.model", "llama");
    w.set("tokenizer.ggml.tokens", GgufValue::strings(pieces));
    w.set("tokenizer.ggml.scores", GgufValue::floats(scores));
    w.set("tokenizer.ggml.token_type", GgufValue::ints(types));
    w.set("tokenizer.ggml.bos_token_id", uint32_t{1});
    w.set("tokenizer.ggml.eos_token_id", uint32_t{2});
    w.set("tokenizer.ggml.unknown_token_id", uint32_t{0});
  }
  auto add = [&](const std::string& name, const TypedTensor& t) {
    if (o.skip.count(name)) return;
    if (name == o.q4_tensor) {
      std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());
      w.add_raw_tensor(name, ne, static_cast<uint32_t>(GgmlType::Q4_0),
                       std::vector<uint8_t>(static_cast<size_t>(t.numel() / 32 * 18), 0x11));
      return;
    }
    w.add_tensor(name, t, o.type);
  };
  const ModelWeights& W = m.weights;
  add("token_embd.weight", W.embed);
  add("output_norm.weight", W.final_norm);
  if (o.output) add("output.weight", W.output());
  for (size_t i = 0; i < W.layers.size(); ++i) {
    const LayerWeights& l = W.layers[i];
    auto n = [&](const char* t) { return "blk." + std::to_string(i) + "." + t + ".weight"; };
    add(n("attn_norm"), l.attn_norm);
    add(n("attn_q"), l.wq);
    add(n("attn_k"), l.wk);
    add(n("attn_v"), l.wv);
    add(n("attn_output"), l.wo);
    add(n("ffn_norm"), l.ffn_norm);
    add(n("ffn_gate"), l.w_gate);
    add(n("ffn_up"), l.w_up);
    add(n("ffn_down"), l.w_down);
  }
  if (o.extra) o.extra(w);
  w.write(path, /*force=*/true);
}

}  // namespace mlar::test
