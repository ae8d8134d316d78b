// HF tokenizer.json with a BPE model: added tokens, normalizer, pre-tokenizer, BPE,
// decoder, as the `tokenizers` library runs them.
#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "tokenizer/hf_bpe_model.h"
#include "tokenizer/hf_components.h"
#include "tokenizer/hf_tokenizer_export.h"
#include "tokenizer/load.h"
#include "tokenizer/text_util.h"
#include "util/error.h"
#include "util/json_depth.h"

namespace mlar {
namespace {

using nlohmann::json;

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip, single_word;
};

bool read_file(const std::filesystem::path& p, std::string* out) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

json parse_json(const std::string& text, const std::string& source) {
  check_json_depth(text, source);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON: {}", source, e.what());
  }
}

bool is_word_char(uint32_t cp) {
  return cp == '_' || (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp >= 0x80;
}

class HfBpeTokenizer final : public Tokenizer {
 public:
  HfBpeTokenizer(const std::string& path, tok::HfTokenizerFiles files) : path_(path), files_(std::move(files)) {
    try {
      load();
    } catch (const json::exception& e) {
      fail("{}: malformed tokenizer.json: {}", path_, e.what());
    }
  }

  std::vector<int32_t> encode(std::string_view input) const override {
    std::string owned;
    std::string_view text = input;
    if (!tok::is_valid_utf8(text)) {
      tok::append_bytes_rust_lossy(owned, text);
      text = owned;
    }
    std::vector<int32_t> out;
    std::vector<tok::HfPiece> pieces;
    auto run_segment = [&](size_t begin, size_t end) {
      if (begin >= end) return;
      std::string s(text.substr(begin, end - begin));
      if (normalizer_) normalizer_->apply(s);
      pieces.clear();
      pieces.push_back({std::move(s), begin == 0});
      if (pre_) pre_->apply(pieces);
      for (const auto& p : pieces) model_->tokenize(p.text, out);
    };
    size_t seg = 0, i = 0;
    while (i < text.size()) {
      size_t mb, me;
      const AddedToken* a = match_added(text, i, seg, &mb, &me);
      if (!a) {
        ++i;
        continue;
      }
      run_segment(seg, mb);
      out.push_back(a->id);
      seg = i = me;
    }
    run_segment(seg, text.size());
    return out;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
        if (!it->second->special) tokens.push_back(it->second->content);
        continue;
      }
      const std::string* t = model_->id_to_token(id);
      if (!t) fail("{}: token id {} is not in the vocabulary (size {})", path_, id, vocab_size());
      tokens.push_back(*t);
    }
    if (!decoder_) {  // tokenizers joins with spaces when there is no decoder
      std::string out;
      for (size_t k = 0; k < tokens.size(); ++k) out += (k ? " " : "") + tokens[k];
      return out;
    }
    decoder_->apply(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::string kind() const override { return "hf-bpe"; }
  void save_hf(const std::filesystem::path& dir) const override {
    tok::save_hf_tokenizer_files(files_, token_text(bos_), token_text(eos_), dir);
  }

 private:
  void load() {
    const json j = parse_json(files_.tokenizer_json, path_);
    if (!j.is_object()) fail("{}: tokenizer.json is not a JSON object", path_);
    if (!j.contains("model")) fail("{}: tokenizer.json has no \"model\"", path_);
    const json& model = j["model"];
    std::string type = model.is_object() && model.contains("type") ? model["type"].get<std::string>() : "";
    if (type.empty() && model.is_object() && model.contains("merges")) type = "BPE";  // old files omit it
    if (type != "BPE")
      fail("{}: unsupported tokenizer model type '{}' (only BPE is supported)", path_, type.empty() ? "?" : type);
    model_ = std::make_unique<tok::HfBpeModel>(model, path_);
    normalizer_ = tok::make_hf_normalizer(j.value("normalizer", json()), path_);
    pre_ = tok::make_hf_pre_tokenizer(j.value("pre_tokenizer", json()), path_);
    decoder_ = tok::make_hf_decoder(j.value("decoder", json()), path_);

    vocab_size_ = model_->id_end();
    for (const auto& a : j.value("added_tokens", json::array())) {
      // Only integer ids: get<int32_t>() of a float out of range is undefined behaviour.
      const json& id = a.at("id");
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
        fail("{}: added token {} has id {}", path_, a.value("content", json()).dump().substr(0, 100),
             id.dump().substr(0, 100));
      AddedToken t{id.get<int32_t>(), a.at("content").get<std::string>(), a.value("special", false),
                   a.value("lstrip", false),  a.value("rstrip", false),       a.value("single_word", false)};
      if (t.id < 0 || t.content.empty()) fail("{}: added token '{}' has id {}", path_, t.content, t.id);
      vocab_size_ = std::max<int64_t>(vocab_size_, int64_t{t.id} + 1);
      added_.push_back(std::move(t));
    }
    for (const auto& t : added_) {
      added_by_id_.emplace(t.id, &t);
      by_first_byte_[static_cast<unsigned char>(t.content[0])].push_back(&t);
    }
    for (auto& list : by_first_byte_)
      std::stable_sort(list.begin(), list.end(),
                       [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
    resolve_special_ids(j);
  }

  // The added token matching at text[i] (longest first), with its extent widened by
  // lstrip / rstrip; nullptr when none matches.
  const AddedToken* match_added(std::string_view text, size_t i, size_t seg_begin, size_t* b, size_t* e) const {
    for (const AddedToken* t : by_first_byte_[static_cast<unsigned char>(text[i])]) {
      if (text.compare(i, t->content.size(), t->content) != 0) continue;
      size_t mb = i, me = i + t->content.size();
      if (t->single_word) {
        size_t n;
        if (mb > 0) {
          size_t p = mb - 1;
          while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
          if (is_word_char(tok::decode_code_point(text, p, &n))) continue;
        }
        if (me < text.size() && is_word_char(tok::decode_code_point(text, me, &n))) continue;
      }
      if (t->lstrip)
        while (mb > seg_begin &&
               (text[mb - 1] == ' ' || text[mb - 1] == '\t' || text[mb - 1] == '\n' || text[mb - 1] == '\r'))
          --mb;
      if (t->rstrip)
        while (me < text.size() && (text[me] == ' ' || text[me] == '\t' || text[me] == '\n' || text[me] == '\r')) ++me;
      *b = mb;
      *e = me;
      return t;
    }
    return nullptr;
  }

  int32_t id_of(const std::string& token) const {
    for (const auto& a : added_)
      if (a.content == token) return a.id;
    if (auto id = model_->token_to_id(token)) return *id;
    return -1;
  }

  std::string token_text(int32_t id) const {
    if (id < 0) return {};
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return it->second->content;
    const std::string* t = model_->id_to_token(id);
    return t ? *t : std::string();
  }

  // bos/eos: tokenizer_config.json, else the post-processor's template, else the
  // usual names.
  void resolve_special_ids(const json& j) {
    auto from_config = [&](const char* key) -> int32_t {
      if (files_.tokenizer_config_json.empty()) return -2;
      const json c = parse_json(files_.tokenizer_config_json, config_path());
      if (!c.is_object() || !c.contains(key)) return -2;
      const json& v = c[key];
      std::string s;
      if (v.is_string())
        s = v.get<std::string>();
      else if (v.is_object() && v.contains("content") && v["content"].is_string())
        s = v["content"].get<std::string>();
      else
        return -1;  // null: none
      const int32_t id = id_of(s);
      if (id < 0) fail("{}: {} '{}' is not a token of {}", config_path(), key, s, path_);
      return id;
    };
    bos_ = from_config("bos_token");
    eos_ = from_config("eos_token");
    if (bos_ == -2 || eos_ == -2) {
      // TemplateProcessing: a SpecialToken opening (closing) the single template is BOS (EOS).
      const json& post = j.contains("post_processor") ? j["post_processor"] : json();
      std::vector<const json*> templates;
      if (post.is_object() && post.value("type", "") == "TemplateProcessing") templates.push_back(&post);
      if (post.is_object() && post.value("type", "") == "Sequence")
        for (const auto& p : post.value("processors", json::array()))
          if (p.is_object() && p.value("type", "") == "TemplateProcessing") templates.push_back(&p);
      for (const json* t : templates) {
        const json single = t->value("single", json::array());
        if (!single.is_array() || single.empty()) continue;
        auto special_of = [&](const json& item) -> int32_t {
          if (!item.contains("SpecialToken")) return -2;
          return id_of(item["SpecialToken"].value("id", ""));
        };
        if (bos_ == -2) bos_ = special_of(single.front());
        if (eos_ == -2 && single.size() > 1) eos_ = special_of(single.back());
      }
    }
    auto first_of = [&](std::initializer_list<const char*> names) {
      for (const char* n : names)
        if (int32_t id = id_of(n); id >= 0) return id;
      return -1;
    };
    if (bos_ < 0 && bos_ != -1)
      bos_ = first_of({"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", "<|endoftext|>"});
    if (eos_ < 0 && eos_ != -1) eos_ = first_of({"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>"});
    if (bos_ < -1) bos_ = -1;
    if (eos_ < -1) eos_ = -1;
  }

  std::string config_path() const {
    return (std::filesystem::path(path_).parent_path() / "tokenizer_config.json").string();
  }

  std::string path_;
  tok::HfTokenizerFiles files_;
  std::unique_ptr<tok::HfBpeModel> model_;
  std::unique_ptr<tok::HfNormalizer> normalizer_;
  std::unique_ptr<tok::HfPreTokenizer> pre_;
  std::unique_ptr<tok::HfDecoder> decoder_;
  std::vector<AddedToken> added_;
  std::unordered_map<int32_t, const AddedToken*> added_by_id_;
  std::array<std::vector<const AddedToken*>, 256> by_first_byte_;
  int32_t bos_ = -2, eos_ = -2;
  int64_t vocab_size_ = 0;
};

}  // namespace

std::shared_ptr<const Tokenizer> load_hf_tokenizer(const std::string& path) {
  tok::HfTokenizerFiles files;
  if (!read_file(path, &files.tokenizer_json)) fail("{}: cannot open tokenizer.json", path);
  const auto dir = std::filesystem::path(path).parent_path();
  read_file(dir / "tokenizer_config.json", &files.tokenizer_config_json);
  read_file(dir / "special_tokens_map.json", &files.special_tokens_map_json);
  return std::make_shared<HfBpeTokenizer>(path, std::move(files));
}

std::shared_ptr<const Tokenizer> parse_hf_tokenizer(std::string tokenizer_json, const std::string& source,
                                                    std::string tokenizer_config_json) {
  tok::HfTokenizerFiles files;
  files.tokenizer_json = std::move(tokenizer_json);
  files.tokenizer_config_json = std::move(tokenizer_config_json);
  return std::make_shared<HfBpeTokenizer>(source, std::move(files));
}

}  // namespace mlar
