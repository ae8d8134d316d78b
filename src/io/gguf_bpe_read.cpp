// GGUF tokenizer.ggml.model "gpt2" -> a byte-level BPE tokenizer (gguf_bpe_vocab.h):
// the metadata is checked, then rebuilt as the tokenizer.json it stands for and
// loaded by the HF tokenizer, so encoding and decoding are the HF pipeline's.
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/gguf_bpe_pre.h"
#include "io/gguf_bpe_vocab.h"
#include "tokenizer/load.h"
#include "util/error.h"

namespace mlar {

std::shared_ptr<const Tokenizer> read_gguf_bpe_tokenizer(const GgufFile& f) {
  using json = nlohmann::json;
  const GgufMetadata& md = f.metadata();
  const std::string& path = f.path();
  if (md.get_string("tokenizer.ggml.model", "") != "gpt2") return nullptr;
  if (!md.contains("tokenizer.ggml.pre"))
    fail("{}: tokenizer.ggml.model is \"gpt2\" but tokenizer.ggml.pre is missing (llama.cpp would fall back to its "
         "\"default\" pre-tokenizer, which this reader does not implement)",
         path);
  const std::string pre_name = md.get_string("tokenizer.ggml.pre");
  const gguf_bpe::PreTokenizer* pre = gguf_bpe::pre_by_name(pre_name);
  if (!pre)
    fail("{}: tokenizer.ggml.pre '{}' is not a pre-tokenizer this reader knows ({} and llama.cpp's other names for "
         "them)",
         path, pre_name, gguf_bpe::known_pre_names());

  const std::vector<std::string> tokens = md.get_string_array("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  std::vector<int64_t> types(n, gguf_tok::kNormal);
  if (md.contains("tokenizer.ggml.token_type")) {
    types = md.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      fail("{}: tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}", path, types.size(), n);
  }
  if (!md.contains("tokenizer.ggml.merges"))
    fail("{}: tokenizer.ggml.model is \"gpt2\" but tokenizer.ggml.merges is missing", path);
  const std::vector<std::string> merges = md.get_string_array("tokenizer.ggml.merges");

  // Vocabulary and added tokens; unused ids (fillers) are left out, as the holes they stand for.
  json vocab = json::object(), added = json::array();
  std::unordered_map<std::string, size_t> id_of;
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = tokens[i];
    const int64_t type = types[i];
    if (type < 0 || type > gguf_tok::kByte)
      fail("{}: tokenizer.ggml.token_type[{}] is {} (GGUF token types are 0 to 6)", path, i, type);
    if (type == gguf_tok::kUnused) continue;
    if (t.empty()) fail("{}: tokenizer.ggml.tokens[{}] is empty", path, i);
    auto [it, fresh] = id_of.emplace(t, i);
    if (!fresh) fail("{}: tokenizer.ggml.tokens[{}] and [{}] are both '{}'", path, it->second, i, t);
    vocab[t] = i;
    if (type == gguf_tok::kControl || type == gguf_tok::kUserDefined)
      added.push_back(json{{"id", i},
                           {"content", t},
                           {"single_word", false},
                           {"lstrip", false},
                           {"rstrip", false},
                           {"normalized", false},
                           {"special", type == gguf_tok::kControl}});
  }
  json merge_list = json::array();
  for (size_t k = 0; k < merges.size(); ++k) {
    const std::string& m = merges[k];
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;  // as llama.cpp splits them
    if (sp == std::string::npos || sp + 1 >= m.size())
      fail("{}: tokenizer.ggml.merges[{}] '{}' is not two tokens separated by a space", path, k, m);
    const std::string a = m.substr(0, sp), b = m.substr(sp + 1);
    for (int part = 0; part < 3; ++part) {
      const std::string t = part == 0 ? a : part == 1 ? b : a + b;
      if (!id_of.count(t))
        fail("{}: tokenizer.ggml.merges[{}] '{}' {} '{}', which is not in tokenizer.ggml.tokens", path, k, m,
             part < 2 ? "uses" : "makes", t);
    }
    merge_list.push_back(json::array({a, b}));
  }

  auto special = [&](const char* key) -> json {
    if (!md.contains(key)) return nullptr;
    const int64_t id = md.get_int(key);
    if (id < 0 || static_cast<uint64_t>(id) >= n)
      fail("{}: {} ({}) is outside the vocabulary of {} tokens", path, key, id, n);
    if (types[static_cast<size_t>(id)] == gguf_tok::kUnused) return nullptr;
    return tokens[static_cast<size_t>(id)];
  };
  const json bos = special("tokenizer.ggml.bos_token_id"), eos = special("tokenizer.ggml.eos_token_id");
  special("tokenizer.ggml.unknown_token_id");  // checked only: byte-level BPE has no unknown text
  special("tokenizer.ggml.padding_token_id");

  const json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", gguf_bpe::pre_tokenizer_json(*pre)},
      {"post_processor", nullptr},
      {"decoder", json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", json{{"type", "BPE"},
                     {"dropout", nullptr},
                     {"unk_token", nullptr},
                     {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr},
                     {"fuse_unk", false},
                     {"byte_fallback", false},
                     {"ignore_merges", pre->ignore_merges},
                     {"vocab", vocab},
                     {"merges", merge_list}}},
  };
  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"bos_token", bos},
                 {"eos_token", eos},
                 {"add_bos_token", md.get_bool("tokenizer.ggml.add_bos_token", false)},
                 {"add_eos_token", md.get_bool("tokenizer.ggml.add_eos_token", false)},
                 {"clean_up_tokenization_spaces", false}};
  return parse_hf_tokenizer(tokenizer.dump(), path, config.dump(2) + "\n");
}

}  // namespace mlar
