// A byte-level BPE tokenizer.json as GGUF tokenizer.ggml.* metadata, llama.cpp's
// "gpt2" form (gguf_bpe_vocab.h).
#include "io/gguf_bpe_vocab.h"

#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/gguf_bpe_pre.h"
#include "tokenizer/hf_bpe_model.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

using json = nlohmann::json;

bool read_text(const fs::path& p, std::string* out) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
}

std::string short_dump(const json& j) {
  std::string s = j.dump();
  return s.size() > 160 ? s.substr(0, 160) + "..." : s;
}

// The known pre-tokenizer `p` (tokenizer.json's "pre_tokenizer") is, or nullptr.
const gguf_bpe::PreTokenizer* detect_pre(const json& p) {
  auto byte_level = [](const json& x, bool regex) {
    return type_of(x) == "ByteLevel" && !x.value("add_prefix_space", true) && x.value("use_regex", true) == regex;
  };
  if (byte_level(p, true)) return gguf_bpe::pre_by_regex("");
  if (type_of(p) != "Sequence" || !p.contains("pretokenizers") || !p["pretokenizers"].is_array()) return nullptr;
  const json& list = p["pretokenizers"];
  if (list.size() != 2 || !byte_level(list[1], false)) return nullptr;
  const json& s = list[0];
  if (type_of(s) != "Split" || s.value("behavior", "") != "Isolated" || s.value("invert", false)) return nullptr;
  if (!s.contains("pattern") || !s["pattern"].is_object() || !s["pattern"].contains("Regex") ||
      !s["pattern"]["Regex"].is_string())
    return nullptr;
  return gguf_bpe::pre_by_regex(s["pattern"]["Regex"].get<std::string>());
}

// Added tokens that llama.cpp's converter makes control tokens though not marked special.
bool looks_special(const std::string& t) {
  auto wraps = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.starts_with(open) && t.ends_with(close);
  };
  return t == "<pad>" || t == "<mask>" || wraps("<|", "|>") || wraps("<\xEF\xBD\x9C", "\xEF\xBD\x9C>");
}

// The content of a tokenizer_config.json entry ("tok" or {"content": "tok"}); empty if none.
std::string config_token(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return {};
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

// The post-processor's template for one sequence (TemplateProcessing, alone or in a Sequence).
json single_template(const json& j) {
  const json post = j.value("post_processor", json());
  std::vector<json> procs;
  if (type_of(post) == "Sequence" && post.contains("processors") && post["processors"].is_array())
    procs.assign(post["processors"].begin(), post["processors"].end());
  else
    procs.push_back(post);
  for (const json& p : procs)
    if (type_of(p) == "TemplateProcessing" && p.contains("single") && p["single"].is_array()) return p["single"];
  return json::array();
}

std::string special_in(const json& item) {
  if (!item.is_object() || !item.contains("SpecialToken") || !item["SpecialToken"].is_object()) return {};
  return item["SpecialToken"].value("id", "");
}

}  // namespace

std::optional<GgufBpeVocab> gguf_bpe_vocab(const Tokenizer& tok, const fs::path& dir, int64_t rows,
                                           const std::string& source, std::string* why, bool* byte_level,
                                           std::vector<std::string>* notes) {
  *byte_level = false;
  std::string text, config_text;
  if (!read_text(dir / "tokenizer.json", &text)) {
    *why = "it wrote no tokenizer.json";
    return std::nullopt;
  }
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    *why = "tokenizer.json is not readable as an object with a model";
    return std::nullopt;
  }
  const json config = read_text(dir / "tokenizer_config.json", &config_text)
                          ? json::parse(config_text, nullptr, false)
                          : json();
  const json& model = j["model"];
  if (model.value("type", "BPE") != "BPE" || model.value("byte_fallback", false) ||
      type_of(j.value("decoder", json())) != "ByteLevel") {
    *why = "its tokenizer.json is not byte-level BPE (BPE without byte fallback, ByteLevel decoder)";
    return std::nullopt;
  }
  *byte_level = true;
  const json norm = j.value("normalizer", json());
  if (!norm.is_null() && type_of(norm) != "NFC") {  // NFC: llama.cpp applies none, nor does this runtime
    *why = fmt::format("its normalizer {} has no llama.cpp equivalent", short_dump(norm));
    return std::nullopt;
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
      *why = fmt::format("its BPE model has a {}, which llama.cpp's BPE does not apply", key);
      return std::nullopt;
    }
  const gguf_bpe::PreTokenizer* pre = detect_pre(j.value("pre_tokenizer", json()));
  if (!pre) {
    *why = fmt::format(
        "its pre-tokenizer {} is none of the llama.cpp pre-tokenizers this export knows ({}; see "
        "src/io/gguf_bpe_vocab.h)",
        short_dump(j.value("pre_tokenizer", json())), gguf_bpe::known_pre_names());
    return std::nullopt;
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    *why = "its tokenizer.json has no vocabulary object";
    return std::nullopt;
  }

  // Tokens by id: the vocabulary, then the added tokens over it.
  std::map<int64_t, std::string> vocab;
  for (const auto& [t, id] : model["vocab"].items())
    if (id.is_number_integer() && id.get<int64_t>() >= 0) vocab.emplace(id.get<int64_t>(), t);
  struct Added {
    std::string content;
    bool special;
  };
  std::map<int64_t, Added> added;
  for (const json& a : j.value("added_tokens", json::array()))
    if (a.is_object() && a.contains("id") && a["id"].is_number_integer() && a.contains("content") &&
        a["content"].is_string())
      added[a["id"].get<int64_t>()] = {a["content"].get<std::string>(), a.value("special", false)};
  int64_t end = 0;
  if (!vocab.empty()) end = vocab.rbegin()->first + 1;
  if (!added.empty()) end = std::max(end, added.rbegin()->first + 1);
  if (end > rows) fail("{}: the tokenizer has ids up to {}, the embedding {} rows", source, end - 1, rows);

  GgufBpeVocab v;
  v.pre = std::string(pre->name);
  v.tokens.resize(static_cast<size_t>(rows));
  v.types.resize(static_cast<size_t>(rows));
  std::unordered_map<std::string, int64_t> id_of;
  for (int64_t i = 0; i < rows; ++i) {
    const size_t u = static_cast<size_t>(i);
    if (auto a = added.find(i); a != added.end()) {
      v.tokens[u] = a->second.content;
      const bool control = a->second.special || looks_special(a->second.content);
      if (!control) {  // llama.cpp's converter writes U+2581 in user-defined tokens as a space
        for (size_t at = v.tokens[u].find("\xE2\x96\x81"); at != std::string::npos;
             at = v.tokens[u].find("\xE2\x96\x81", at + 1))
          v.tokens[u].replace(at, 3, " ");
      }
      v.types[u] = control ? gguf_tok::kControl : gguf_tok::kUserDefined;
    } else if (auto t = vocab.find(i); t != vocab.end()) {
      v.tokens[u] = t->second;
      v.types[u] = gguf_tok::kNormal;
    } else {
      v.tokens[u] = fmt::format("[PAD{}]", i);
      v.types[u] = gguf_tok::kUnused;
    }
    if (v.tokens[u].empty()) {
      *why = fmt::format("token {} is empty", i);
      return std::nullopt;
    }
    auto [it, fresh] = id_of.emplace(v.tokens[u], i);
    if (!fresh) {  // llama.cpp requires distinct token texts
      *why = fmt::format("tokens {} and {} are both '{}'", it->second, i, v.tokens[u]);
      return std::nullopt;
    }
  }

  // Merges, "a b" (pairs written [a, b] are joined; byte-level tokens hold no space).
  const json merges = model.value("merges", json::array());
  v.merges.reserve(merges.size());
  for (const json& m : merges) {
    if (m.is_string()) {
      v.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      const std::string a = m[0].get<std::string>(), b = m[1].get<std::string>();
      if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos) {
        *why = fmt::format("merge ['{}', '{}'] holds a space, which GGUF's \"a b\" merges cannot", a, b);
        return std::nullopt;
      }
      v.merges.push_back(a + " " + b);
    } else {
      *why = fmt::format("merge {} is neither \"a b\" nor [a, b]", short_dump(m));
      return std::nullopt;
    }
  }

  // Special ids and what the HF tokenizer adds around a text.
  auto id_of_text = [&](const std::string& t) -> int32_t {
    if (t.empty()) return -1;
    auto it = id_of.find(t);
    return it == id_of.end() ? -1 : static_cast<int32_t>(it->second);
  };
  v.bos_id = tok.bos_id() >= 0 && tok.bos_id() < rows ? tok.bos_id() : -1;
  v.eos_id = tok.eos_id() >= 0 && tok.eos_id() < rows ? tok.eos_id() : -1;
  v.unk_id = model.contains("unk_token") && model["unk_token"].is_string()
                 ? id_of_text(model["unk_token"].get<std::string>())
                 : -1;
  v.pad_id = id_of_text(config_token(config, "pad_token"));
  const json single = single_template(j);
  const std::string first = single.empty() ? "" : special_in(single.front());
  const std::string last = single.size() > 1 ? special_in(single.back()) : "";
  if (config.is_object() && config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
    v.add_bos = config["add_bos_token"].get<bool>();
  else
    v.add_bos = !first.empty();
  if (config.is_object() && config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
    v.add_eos = config["add_eos_token"].get<bool>();
  else
    v.add_eos = !last.empty();
  if (v.add_bos && (v.bos_id < 0 || (!first.empty() && id_of_text(first) != v.bos_id))) {
    if (notes)
      notes->push_back(fmt::format("the tokenizer adds '{}' before a text, which is not its BOS; add_bos_token is "
                                   "written false",
                                   first));
    v.add_bos = false;
  }
  if (v.add_eos && (v.eos_id < 0 || (!last.empty() && id_of_text(last) != v.eos_id))) {
    if (notes)
      notes->push_back(fmt::format("the tokenizer adds '{}' after a text, which is not its EOS; add_eos_token is "
                                   "written false",
                                   last));
    v.add_eos = false;
  }

  // llama.cpp fixes ignore_merges by the pre-tokenizer. Where the tokenizer.json says
  // otherwise, the two agree unless some token is not what the merges make of it.
  if (model.value("ignore_merges", false) != pre->ignore_merges) {
    json merged_model = model;
    merged_model["ignore_merges"] = false;
    const tok::HfBpeModel bpe(merged_model, source);
    int64_t differ = 0;
    std::string example;
    std::vector<int32_t> ids;
    for (const auto& [id, t] : vocab) {
      if (added.count(id)) continue;
      ids.clear();
      bpe.tokenize(t, ids);
      if (ids.size() != 1 || ids[0] != id) {
        if (differ++ == 0) example = t;
      }
    }
    if (differ > 0 && notes)
      notes->push_back(fmt::format(
          "llama.cpp's {} pre-tokenizer {} merges for a word that is a whole token, this tokenizer.json {}: {} of "
          "its tokens (e.g. '{}') are not what the merges make of them, so a word equal to one of them tokenises "
          "differently in llama.cpp (and in this toolkit's GGUF reader, which follows llama.cpp)",
          pre->name, pre->ignore_merges ? "skips" : "applies", pre->ignore_merges ? "applies them" : "skips them",
          differ, example));
  }
  return v;
}

void set_gguf_bpe_tokenizer(GgufWriter& w, const GgufBpeVocab& v) {
  w.set("tokenizer.ggml.model", "gpt2");
  w.set("tokenizer.ggml.pre", v.pre);
  w.set("tokenizer.ggml.tokens", GgufValue::strings(v.tokens));
  w.set("tokenizer.ggml.token_type", GgufValue::ints(v.types));
  w.set("tokenizer.ggml.merges", GgufValue::strings(v.merges));
  if (v.bos_id >= 0) w.set("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos_id));
  if (v.eos_id >= 0) w.set("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos_id));
  if (v.unk_id >= 0) w.set("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id));
  if (v.pad_id >= 0) w.set("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(v.pad_id));
  w.set("tokenizer.ggml.add_bos_token", v.add_bos);
  w.set("tokenizer.ggml.add_eos_token", v.add_eos);
}

}  // namespace mlar
