#include "tokenizer/hf_bpe_model.h"

#include <algorithm>

#include "tokenizer/text_util.h"
#include "util/error.h"

namespace mlar::tok {

namespace {
std::string string_or_empty(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return {};
  return j[key].get<std::string>();
}
}  // namespace

HfBpeModel::HfBpeModel(const nlohmann::json& model, const std::string& source) {
  const auto& vocab = model.at("vocab");
  if (!vocab.is_object()) fail("{}: model.vocab is not an object", source);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const auto& v = it.value();
    // Only integers: get<int64_t>() of a float out of range is undefined behaviour.
    const int64_t id = v.is_number_integer() ? v.get<int64_t>() : -1;
    if (id < 0 || id > (1 << 30))
      fail("{}: model.vocab gives '{}' the id {}", source, it.key(), v.dump().substr(0, 100));
    const std::string& tok = storage_.emplace_back(it.key());
    vocab_.emplace(tok, static_cast<int32_t>(id));
    id_to_token_.emplace(static_cast<int32_t>(id), &tok);  // the first token given an id keeps it
    id_end_ = std::max(id_end_, id + 1);
  }

  byte_fallback_ = model.value("byte_fallback", false);
  fuse_unk_ = model.value("fuse_unk", false);
  ignore_merges_ = model.value("ignore_merges", false);
  prefix_ = string_or_empty(model, "continuing_subword_prefix");
  suffix_ = string_or_empty(model, "end_of_word_suffix");
  const std::string unk = string_or_empty(model, "unk_token");
  if (!unk.empty()) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) fail("{}: model.unk_token '{}' is not in the vocabulary", source, unk);
    unk_id_ = it->second;
  }
  byte_ids_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    if (it != vocab_.end()) byte_ids_[static_cast<size_t>(b)] = it->second;
  }

  const auto& merges = model.contains("merges") ? model["merges"] : nlohmann::json::array();
  if (!merges.is_array()) fail("{}: model.merges is not an array", source);
  int32_t rank = 0;
  for (const auto& m : merges) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail("{}: merge {} '{}' is not two tokens separated by one space", source, rank, s);
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      fail("{}: merge {} is neither \"a b\" nor [a, b]: {}", source, rank, m.dump());
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end())
      fail("{}: merge {} ('{}' '{}') uses a token missing from the vocabulary", source, rank, a, b);
    std::string merged = a;
    merged += !prefix_.empty() && b.compare(0, prefix_.size(), prefix_) == 0 ? b.substr(prefix_.size()) : b;
    auto im = vocab_.find(merged);
    if (im == vocab_.end())
      fail("{}: merge {} ('{}' '{}') makes '{}', which is not in the vocabulary", source, rank, a, b, merged);
    merges_[key(ia->second, ib->second)] = MergeTo{rank, im->second};
    ++rank;
  }

  // Cutting long words before U+2581 changes nothing when no token holds U+2581 after
  // another character, U+2581 itself is a token (no fused <unk> across the cut), and
  // nothing depends on word ends (prefix/suffix, ignore_merges).
  split_at_spaces_ = prefix_.empty() && suffix_.empty() && !ignore_merges_ && vocab_.count(kSpaceSymbol);
  for (const auto& [tok, id] : vocab_) {
    for (size_t at = tok.find(kSpaceSymbol, 1); at != std::string_view::npos && split_at_spaces_;
         at = tok.find(kSpaceSymbol, at + 1))
      if (at < kSpaceSymbol.size() || tok.substr(at - kSpaceSymbol.size(), kSpaceSymbol.size()) != kSpaceSymbol)
        split_at_spaces_ = false;
  }
}

const std::string* HfBpeModel::id_to_token(int32_t id) const {
  auto it = id_to_token_.find(id);
  return it == id_to_token_.end() ? nullptr : it->second;
}

std::optional<int32_t> HfBpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void HfBpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (!split_at_spaces_ || word.size() < 64) {
    merge_word(word, out);
    return;
  }
  size_t begin = 0;
  for (size_t at = word.find(kSpaceSymbol, 1); at != std::string_view::npos; at = word.find(kSpaceSymbol, at + 1)) {
    if (at >= kSpaceSymbol.size() && word.substr(at - kSpaceSymbol.size(), kSpaceSymbol.size()) == kSpaceSymbol)
      continue;
    merge_word(word.substr(begin, at - begin), out);
    begin = at;
  }
  merge_word(word.substr(begin), out);
}

void HfBpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  if (w.empty()) return;
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Sym> syms;
  syms.reserve(w.size());
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(syms.size());
    syms.push_back({id, n - 1, -1, true});
  };
  // The initial symbols: characters (with the subword prefix / word suffix), unknown
  // ones as bytes (byte_fallback) or <unk> (fused when fuse_unk).
  bool have_unk = false;
  std::string s;
  for (size_t i = 0; i < w.size();) {
    size_t n = valid_utf8_prefix_len(w.substr(i));
    if (n == 0) n = 1;
    const bool first = i == 0, last = i + n == w.size();
    s.assign(first ? "" : prefix_);
    s.append(w.substr(i, n));
    if (last) s.append(suffix_);
    i += n;
    if (auto it = vocab_.find(s); it != vocab_.end()) {
      if (have_unk) add(unk_id_);
      have_unk = false;
      add(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : s) add(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (have_unk && !fuse_unk_) add(unk_id_);
      have_unk = true;
    }
  }
  if (have_unk) add(unk_id_);
  for (size_t k = 0; k + 1 < syms.size(); ++k) syms[k].next = static_cast<int32_t>(k + 1);

  struct Cand {
    int32_t rank, pos, new_id;
  };
  auto worse = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  std::vector<Cand> heap;
  auto push = [&](int32_t pos) {
    const int32_t nx = syms[static_cast<size_t>(pos)].next;
    if (nx < 0) return;
    auto it = merges_.find(key(syms[static_cast<size_t>(pos)].id, syms[static_cast<size_t>(nx)].id));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, pos, it->second.id});
    std::push_heap(heap.begin(), heap.end(), worse);
  };
  for (size_t k = 0; k + 1 < syms.size(); ++k) push(static_cast<int32_t>(k));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), worse);
    const Cand top = heap.back();
    heap.pop_back();
    Sym& l = syms[static_cast<size_t>(top.pos)];
    if (!l.alive || l.next < 0) continue;
    Sym& r = syms[static_cast<size_t>(l.next)];
    auto it = merges_.find(key(l.id, r.id));
    if (it == merges_.end() || it->second.id != top.new_id) continue;
    l.id = top.new_id;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = top.pos;
    if (l.prev >= 0) push(l.prev);
    push(top.pos);
  }
  for (const auto& sym : syms)
    if (sym.alive) out.push_back(sym.id);
}

}  // namespace mlar::tok
