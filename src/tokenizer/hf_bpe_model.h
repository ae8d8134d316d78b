// Internal: the BPE model of an HF tokenizer.json (vocab + ranked merges), tokenizing
// one pre-tokenized word as the `tokenizers` library does.
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace mlar::tok {

class HfBpeModel {
 public:
  // `model` is tokenizer.json's "model" object (type BPE). Throws mlar::Error naming `source`.
  HfBpeModel(const nlohmann::json& model, const std::string& source);

  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  // nullptr when the id has no token.
  const std::string* id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  int64_t id_end() const { return id_end_; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::deque<std::string> storage_;
  std::unordered_map<std::string_view, int32_t> vocab_;
  // By id; a map, not a table: ids may be sparse (up to 2^30 for a handful of tokens).
  std::unordered_map<int32_t, const std::string*> id_to_token_;
  int64_t id_end_ = 0;  // largest id + 1
  struct MergeTo {
    int32_t rank, id;
  };
  std::unordered_map<uint64_t, MergeTo> merges_;
  std::array<int32_t, 256> byte_ids_{};
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  std::string prefix_, suffix_;   // continuing_subword_prefix, end_of_word_suffix
  bool split_at_spaces_ = false;  // words may be cut before each U+2581 that follows another character
};

}  // namespace mlar::tok
