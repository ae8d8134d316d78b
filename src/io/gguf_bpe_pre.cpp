// llama.cpp's byte-level BPE pre-tokenizers (gguf_bpe_pre.h). The regexes are the
// ones the models' tokenizer.json files carry; the groups of names are those
// llama.cpp's llama-vocab.cpp gives one pre-tokenizer type.
#include "io/gguf_bpe_pre.h"

#include <array>
#include <initializer_list>

namespace mlar::gguf_bpe {
namespace {

constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::array<PreTokenizer, 4> kPres = {{
    {"llama-bpe", kLlama3, true},
    {"qwen2", kQwen2, false},
    {"tekken", kTekken, true},
    {"gpt-2", "", false},
}};

struct Alias {
  std::string_view name;
  size_t index;  // into kPres
};
// llama.cpp's names of the same pre-tokenizer types (smaug-bpe and dbrx share the
// Llama 3 regex but not ignore_merges, so they are not here).
const std::initializer_list<Alias> kAliases = {
    {"llama3", 0},     {"llama-v3", 0},   {"llama-bpe", 0},  {"falcon3", 0},  {"falcon-h1", 0},
    {"pixtral", 0},    {"midm-2.0", 0},   {"lfm2", 0},       {"qwen2", 1},    {"deepseek-r1-qwen", 1},
    {"stablelm2", 1},  {"megrez", 1},     {"tekken", 2},     {"gpt-2", 3},    {"phi-2", 3},
    {"jina-es", 3},    {"jina-de", 3},    {"jina-v2-es", 3}, {"jina-v2-de", 3}, {"gigachat", 3},
    {"mpt", 3},        {"olmo", 3},       {"jais", 3},       {"exaone4", 3},
};

}  // namespace

const PreTokenizer* pre_by_name(std::string_view name) {
  for (const Alias& a : kAliases)
    if (a.name == name) return &kPres[a.index];
  return nullptr;
}

const PreTokenizer* pre_by_regex(std::string_view regex) {
  for (const PreTokenizer& p : kPres)
    if (p.regex == regex) return &p;
  return nullptr;
}

std::string known_pre_names() {
  std::string s;
  for (const PreTokenizer& p : kPres) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

nlohmann::json pre_tokenizer_json(const PreTokenizer& p) {
  using nlohmann::json;
  if (p.regex.empty())
    return json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  return json{{"type", "Sequence"},
              {"pretokenizers",
               json::array({json{{"type", "Split"},
                                 {"pattern", json{{"Regex", std::string(p.regex)}}},
                                 {"behavior", "Isolated"},
                                 {"invert", false}},
                            json{{"type", "ByteLevel"},
                                 {"add_prefix_space", false},
                                 {"trim_offsets", true},
                                 {"use_regex", false}}})}};
}

}  // namespace mlar::gguf_bpe
