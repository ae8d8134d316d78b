// HF files for a SentencePiece-BPE vocabulary, in the form transformers' Llama
// converter produces (BPE with byte fallback, merges derived from the scores).
#include "tokenizer/spm_hf_export.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "tokenizer/spm_vocab.h"
#include "tokenizer/text_util.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace mlar::tok {

using ojson = nlohmann::ordered_json;

std::vector<std::pair<std::string, std::string>> spm_merges(const SpmVocab& v) {
  std::unordered_map<std::string_view, int32_t> id_of;
  for (size_t i = 0; i < v.pieces.size(); ++i) id_of[v.pieces[i]] = static_cast<int32_t>(i);
  struct Merge {
    int32_t left, right;
    float score;
  };
  std::vector<Merge> merges;
  std::vector<Merge> local;
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    const std::string_view p = v.pieces[i];
    if (id_of[p] != static_cast<int32_t>(i)) continue;  // a repeated piece counts once
    local.clear();
    for (size_t at = 0; at < p.size();) {
      size_t n = valid_utf8_prefix_len(p.substr(at));
      at += n == 0 ? 1 : n;
      if (at >= p.size()) break;
      auto l = id_of.find(p.substr(0, at)), r = id_of.find(p.substr(at));
      if (l != id_of.end() && r != id_of.end()) local.push_back({l->second, r->second, v.scores[i]});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return a.left != b.left ? a.left < b.left : a.right < b.right; });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (const auto& m : merges)
    out.emplace_back(v.pieces[static_cast<size_t>(m.left)], v.pieces[static_cast<size_t>(m.right)]);
  return out;
}

namespace {

constexpr const char* kVocabPlaceholder = "@@mlar-vocab@@";

ojson added_token_json(const std::string& content, bool special) {
  return ojson{{"content", content}, {"lstrip", false},      {"normalized", false},
               {"rstrip", false},    {"single_word", false}, {"special", special}};
}

ojson tokenizer_json(const SpmVocab& v) {
  ojson added = ojson::array();
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    const int32_t t = v.types[i];
    if (t != kControl && t != kUnknown && t != kUserDefined) continue;
    ojson a = ojson::object();
    a["id"] = static_cast<int32_t>(i);
    a.update(added_token_json(v.pieces[i], t != kUserDefined));
    added.push_back(std::move(a));
  }

  ojson normalizers = ojson::array();
  if (*v.remove_extra_whitespaces) {
    // SentencePiece's remove_extra_whitespaces: leading and trailing spaces go, runs become one.
    normalizers.push_back({{"type", "Replace"}, {"pattern", {{"Regex", "\\A +| +\\z"}}}, {"content", ""}});
    normalizers.push_back({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}});
  }
  if (v.add_dummy_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", std::string(kSpaceSymbol)}});
  normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", std::string(kSpaceSymbol)}});

  ojson decoders = ojson::array();
  decoders.push_back({{"type", "Replace"}, {"pattern", {{"String", std::string(kSpaceSymbol)}}}, {"content", " "}});
  decoders.push_back({{"type", "ByteFallback"}});
  decoders.push_back({{"type", "Fuse"}});
  if (v.add_dummy_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});

  ojson post = nullptr;
  if (v.bos_id >= 0) {
    const std::string& bos = v.pieces[static_cast<size_t>(v.bos_id)];
    post = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{bos, {{"id", bos}, {"ids", {v.bos_id}}, {"tokens", {bos}}}}}}};
  }

  const auto merge_list = spm_merges(v);
  bool any_space = false;
  for (const auto& [l, r] : merge_list)
    any_space = any_space || l.find(' ') != std::string::npos || r.find(' ') != std::string::npos;
  ojson merges = ojson::array();
  for (const auto& [l, r] : merge_list) {
    if (any_space)
      merges.push_back(ojson::array({l, r}));
    else
      merges.push_back(l + " " + r);
  }

  ojson model{{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", v.unk_id >= 0 ? ojson(v.pieces[static_cast<size_t>(v.unk_id)]) : ojson(nullptr)},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", true},
              {"byte_fallback", true},
              {"ignore_merges", false},
              {"vocab", kVocabPlaceholder},
              {"merges", std::move(merges)}};

  return ojson{{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", std::move(added)},
               {"normalizer", {{"type", "Sequence"}, {"normalizers", std::move(normalizers)}}},
               {"pre_tokenizer", nullptr},
               {"post_processor", std::move(post)},
               {"decoder", {{"type", "Sequence"}, {"decoders", std::move(decoders)}}},
               {"model", std::move(model)}};
}

// The vocabulary object in id order (ordered_json would look keys up linearly).
std::string vocab_json(const SpmVocab& v) {
  std::unordered_map<std::string_view, int32_t> seen;
  std::string out = "{";
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    if (!seen.emplace(v.pieces[i], static_cast<int32_t>(i)).second) continue;
    if (out.size() > 1) out += ", ";
    out += nlohmann::json(v.pieces[i]).dump();
    out += ": ";
    out += std::to_string(i);
  }
  return out + "}";
}

ojson token_or_null(const SpmVocab& v, int32_t id) {
  return id >= 0 ? ojson(v.pieces[static_cast<size_t>(id)]) : ojson(nullptr);
}

}  // namespace

void save_spm_hf(const SpmVocab& v, const std::filesystem::path& dir, const std::string& model_bytes,
                 bool with_tokenizer_json) {
  std::filesystem::create_directories(dir);
  if (with_tokenizer_json) {
    for (size_t i = 0; i < v.pieces.size(); ++i)
      if (!is_valid_utf8(v.pieces[i]))
        fail("{}: token {} is not valid UTF-8 and cannot be written to tokenizer.json", dir.string(), i);
    std::string text = tokenizer_json(v).dump(2);
    const std::string placeholder = nlohmann::json(kVocabPlaceholder).dump();
    text.replace(text.find(placeholder), placeholder.size(), vocab_json(v));
    write_text_file(dir / "tokenizer.json", text + "\n");
  }

  ojson added_decoder = ojson::object();
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    const int32_t t = v.types[i];
    if (t == kControl || t == kUnknown || t == kUserDefined)
      added_decoder[std::to_string(i)] = added_token_json(v.pieces[i], t != kUserDefined);
  }
  // transformers 5 rebuilds a LlamaTokenizer's pipeline from its vocabulary and merges,
  // dropping the whitespace-collapsing normalizer; the generic class keeps tokenizer.json
  // as written (checked: then it gives libsentencepiece's ids on whole text files).
  const char* tokenizer_class = *v.remove_extra_whitespaces ? "PreTrainedTokenizerFast" : "LlamaTokenizerFast";
  ojson config{{"add_bos_token", true},
               {"add_eos_token", false},
               {"added_tokens_decoder", std::move(added_decoder)},
               {"bos_token", token_or_null(v, v.bos_id)},
               {"clean_up_tokenization_spaces", false},
               {"eos_token", token_or_null(v, v.eos_id)},
               {"legacy", true},
               {"pad_token", nullptr},
               {"sp_model_kwargs", ojson::object()},
               {"spaces_between_special_tokens", false},
               {"tokenizer_class", tokenizer_class},
               {"unk_token", token_or_null(v, v.unk_id)},
               {"use_default_system_prompt", false}};
  write_text_file(dir / "tokenizer_config.json", config.dump(2) + "\n");

  ojson special = ojson::object();
  auto add_special = [&](const char* name, int32_t id) {
    if (id < 0) return;
    ojson t = added_token_json(v.pieces[static_cast<size_t>(id)], true);
    t.erase("special");
    special[name] = std::move(t);
  };
  add_special("bos_token", v.bos_id);
  add_special("eos_token", v.eos_id);
  add_special("unk_token", v.unk_id);
  write_text_file(dir / "special_tokens_map.json", special.dump(2) + "\n");

  if (!model_bytes.empty()) {
    std::ofstream f(dir / "tokenizer.model", std::ios::binary | std::ios::trunc);
    f.write(model_bytes.data(), static_cast<std::streamsize>(model_bytes.size()));
    if (!f) fail("{}: cannot write tokenizer.model", dir.string());
  }
}

}  // namespace mlar::tok
