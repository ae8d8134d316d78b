// A tokenizer as GGUF tokenizer.ggml.* metadata (gguf_deepseek2.h).
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/gguf_deepseek2.h"
#include "tokenizer/spm_model_proto.h"
#include "tokenizer/spm_vocab.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using json = nlohmann::json;

const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The items of a Sequence (or the single component) of a tokenizer.json section.
std::vector<json> components(const json& j, const char* list_key) {
  if (!j.is_object()) return {};
  if (j.value("type", "") == "Sequence" && j.contains(list_key) && j[list_key].is_array())
    return std::vector<json>(j[list_key].begin(), j[list_key].end());
  return {j};
}

// A tokenizer.json in the Llama-2 form -> SentencePiece-style vocabulary.
std::optional<SpmVocab> vocab_from_tokenizer_json(const std::string& text, const Tokenizer& tok, std::string* why) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    *why = "tokenizer.json is not readable as an object with a model";
    return std::nullopt;
  }
  const json& model = j["model"];
  if (model.value("type", "BPE") != "BPE" || !model.value("byte_fallback", false)) {
    *why = "its tokenizer.json is not BPE with byte fallback";
    return std::nullopt;
  }
  bool escapes_spaces = false, prepend = false, collapse = false;
  for (const json& n : components(j.value("normalizer", json()), "normalizers")) {
    const std::string type = n.value("type", "");
    if (type == "Prepend" && n.value("prepend", "") == kSpace) prepend = true;
    if (type == "Replace" && n.contains("pattern") && n["pattern"].is_object()) {
      const json& pat = n["pattern"];
      if (pat.value("String", "") == " " && n.value("content", "") == kSpace) escapes_spaces = true;
      if (pat.value("Regex", "") == " {2,}") collapse = true;
    }
  }
  for (const json& p : components(j.value("pre_tokenizer", json()), "pretokenizers")) {
    const std::string type = p.value("type", "");
    if (type == "ByteLevel") {
      *why = "it is a byte-level BPE tokenizer (GPT-2 style, as Llama 3 and Qwen2 use)";
      return std::nullopt;
    }
    if (type == "Metaspace" && p.value("replacement", "") == kSpace) {
      escapes_spaces = true;
      const std::string scheme = p.value("prepend_scheme", p.value("add_prefix_space", true) ? "always" : "never");
      if (scheme != "never") prepend = true;
      if (p.value("split", false)) {
        *why = "its Metaspace pre-tokenizer splits words, which SentencePiece BPE does not";
        return std::nullopt;
      }
    } else if (!type.empty()) {
      *why = fmt::format("its pre-tokenizer {} has no SentencePiece equivalent", type);
      return std::nullopt;
    }
  }
  if (!escapes_spaces) {
    *why = "its tokenizer.json does not escape spaces as U+2581 (not SentencePiece-style)";
    return std::nullopt;
  }

  // Pieces by id: the vocabulary, then added tokens.
  std::map<int64_t, std::string> by_id;
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    *why = "its tokenizer.json has no vocabulary object";
    return std::nullopt;
  }
  for (const auto& [piece, id] : model["vocab"].items())
    if (id.is_number_integer()) by_id[id.get<int64_t>()] = piece;
  std::map<int64_t, bool> added_special;
  for (const json& a : j.value("added_tokens", json::array()))
    if (a.is_object() && a.contains("id") && a["id"].is_number_integer()) {
      by_id[a["id"].get<int64_t>()] = a.value("content", "");
      added_special[a["id"].get<int64_t>()] = a.value("special", false);
    }
  const int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  if (n == 0 || static_cast<int64_t>(by_id.size()) != n || by_id.begin()->first != 0) {
    *why = "its token ids are not contiguous from 0";
    return std::nullopt;
  }
  SpmVocab v;
  v.pieces.resize(static_cast<size_t>(n));
  for (const auto& [id, piece] : by_id) v.pieces[static_cast<size_t>(id)] = piece;
  std::unordered_map<std::string, int64_t> id_of;
  for (int64_t i = 0; i < n; ++i) id_of.emplace(v.pieces[static_cast<size_t>(i)], i);

  // Scores from the merge ranks: the piece merge k produces scores -k.
  const json merges = model.value("merges", json::array());
  const float unreached = -static_cast<float>(merges.size() + 1);
  v.scores.assign(static_cast<size_t>(n), 0.0f);
  std::vector<bool> merged(static_cast<size_t>(n), false);
  for (size_t k = 0; k < merges.size(); ++k) {
    const json& mj = merges[k];
    std::string left, right;
    if (mj.is_string()) {
      const std::string s = mj.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) continue;
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
      left = mj[0].get<std::string>();
      right = mj[1].get<std::string>();
    } else {
      continue;
    }
    auto it = id_of.find(left + right);
    if (it == id_of.end() || merged[static_cast<size_t>(it->second)]) continue;
    merged[static_cast<size_t>(it->second)] = true;
    v.scores[static_cast<size_t>(it->second)] = -static_cast<float>(k);
  }

  // Types.
  const std::string unk = model.contains("unk_token") && model["unk_token"].is_string()
                              ? model["unk_token"].get<std::string>()
                              : std::string();
  v.unk_id = -1;
  if (!unk.empty() && id_of.count(unk)) v.unk_id = static_cast<int32_t>(id_of[unk]);
  v.types.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const size_t u = static_cast<size_t>(i);
    auto a = added_special.find(i);
    if (i == v.unk_id) v.types[u] = tok::kUnknown;
    else if (a != added_special.end()) v.types[u] = a->second ? tok::kControl : tok::kUserDefined;
    else if (tok::byte_piece_value(v.pieces[u]) >= 0) v.types[u] = tok::kByte;
    else v.types[u] = tok::kNormal;
    if (v.types[u] == tok::kNormal && !merged[u]) v.scores[u] = unreached;
  }
  v.bos_id = tok.bos_id() < n ? tok.bos_id() : -1;
  v.eos_id = tok.eos_id() < n ? tok.eos_id() : -1;
  if (v.unk_id < 0) v.unk_id = 0;  // SentencePiece always has one; id 0 by convention
  v.add_dummy_prefix = prepend;
  v.remove_extra_whitespaces = collapse;
  return v;
}

}  // namespace

std::optional<SpmVocab> gguf_spm_vocab(const Tokenizer& tok, const fs::path& scratch, std::string* why) {
  tok.save_hf(scratch);
  std::error_code ec;
  std::optional<SpmVocab> v;
  if (fs::exists(scratch / "tokenizer.model", ec)) {
    const tok::SpmModelInfo info = tok::parse_spm_model(read_bytes(scratch / "tokenizer.model"), "tokenizer.model");
    if (info.model_type != 2) {
      *why = fmt::format("its SentencePiece model is of type {} (not BPE)", info.model_type == 1 ? "unigram"
                                                                              : info.model_type == 3 ? "word"
                                                                                                     : "char");
      return std::nullopt;
    }
    if (info.charsmap_size != 0 || info.treat_whitespace_as_suffix || !info.escape_whitespaces) {
      *why = "its SentencePiece model normalizes text in ways llama.cpp's SPM tokenizer does not";
      return std::nullopt;
    }
    v = info.vocab;
  } else if (fs::exists(scratch / "tokenizer.json", ec)) {
    v = vocab_from_tokenizer_json(read_bytes(scratch / "tokenizer.json"), tok, why);
    if (!v) return std::nullopt;
  } else {
    *why = "it wrote neither tokenizer.model nor tokenizer.json";
    return std::nullopt;
  }
  tok::complete_spm_vocab(*v, tok.kind() + " tokenizer");
  return v;
}

void set_gguf_spm_tokenizer(GgufWriter& w, const SpmVocab& v, int64_t vocab_size) {
  std::vector<std::string> pieces = v.pieces;
  std::vector<float> scores = v.scores;
  std::vector<int32_t> types = v.types;
  for (int64_t i = static_cast<int64_t>(pieces.size()); i < vocab_size; ++i) {
    pieces.push_back(fmt::format("[PAD{}]", i));
    scores.push_back(-1000.0f);
    types.push_back(tok::kUnused);
  }
  w.set("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.tokens", GgufValue::strings(pieces));
  w.set("tokenizer.ggml.scores", GgufValue::floats(scores));
  w.set("tokenizer.ggml.token_type", GgufValue::ints(types));
  if (v.bos_id >= 0) w.set("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos_id));
  if (v.eos_id >= 0) w.set("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos_id));
  if (v.unk_id >= 0) w.set("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id));
  w.set("tokenizer.ggml.add_bos_token", v.bos_id >= 0);
  w.set("tokenizer.ggml.add_eos_token", false);
  w.set("tokenizer.ggml.add_space_prefix", v.add_dummy_prefix);
  w.set("tokenizer.ggml.remove_extra_whitespaces", v.remove_extra_whitespaces.value_or(false));
}

}  // namespace mlar
