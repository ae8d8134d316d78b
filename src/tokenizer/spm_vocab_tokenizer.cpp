// SentencePiece BPE over a scored vocabulary, reproducing libsentencepiece's encoder
// (normalizer with an identity character map, then greedy merging of the adjacent
// pair whose merged piece scores highest, leftmost first; byte fallback) and decoder.
#include <algorithm>
#include <array>
#include <unordered_map>
#include <utility>

#include "tokenizer/spm_hf_export.h"
#include "tokenizer/spm_vocab.h"
#include "tokenizer/text_util.h"
#include "util/error.h"

namespace mlar::tok {

int byte_piece_value(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    char c = p[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

namespace {

bool only_space_symbols(std::string_view p, size_t* count) {
  *count = 0;
  while (!p.empty()) {
    if (p.substr(0, kSpaceSymbol.size()) != kSpaceSymbol) return false;
    p.remove_prefix(kSpaceSymbol.size());
    ++*count;
  }
  return true;
}

}  // namespace

void complete_spm_vocab(SpmVocab& v, const std::string& source) {
  const size_t n = v.pieces.size();
  if (n == 0) fail("{}: tokenizer vocabulary is empty", source);
  if (v.scores.empty()) {
    v.scores.resize(n);
    for (size_t i = 0; i < n; ++i) v.scores[i] = -static_cast<float>(i);
  }
  if (v.scores.size() != n) fail("{}: tokenizer has {} pieces but {} scores", source, n, v.scores.size());
  if (!v.types.empty() && v.types.size() != n)
    fail("{}: tokenizer has {} pieces but {} token types", source, n, v.types.size());
  auto check_id = [&](int32_t id, const char* what) {
    if (id < -1 || id >= static_cast<int64_t>(n))
      fail("{}: {} id {} is outside the vocabulary of {}", source, what, id, n);
  };
  check_id(v.bos_id, "BOS");
  check_id(v.eos_id, "EOS");
  check_id(v.unk_id, "UNK");
  if (v.types.empty()) {
    v.types.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto id = static_cast<int32_t>(i);
      if (id == v.unk_id)
        v.types[i] = kUnknown;
      else if (id == v.bos_id || id == v.eos_id)
        v.types[i] = kControl;
      else if (byte_piece_value(v.pieces[i]) >= 0)
        v.types[i] = kByte;
      else
        v.types[i] = kNormal;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (v.types[i] < kNormal || v.types[i] > kByte)
      fail("{}: token {} ('{}') has unknown type {}", source, i, v.pieces[i], v.types[i]);
    if (v.types[i] == kByte && byte_piece_value(v.pieces[i]) < 0)
      fail("{}: byte token {} is '{}', not <0xAB>", source, i, v.pieces[i]);
  }
  if (!v.remove_extra_whitespaces) {
    bool has_space_run = false;
    for (const auto& p : v.pieces) {
      size_t count;
      if (only_space_symbols(p, &count) && count >= 2) has_space_run = true;
    }
    v.remove_extra_whitespaces = !has_space_run;
  }
}

namespace {

constexpr std::string_view kUnkSurface = " \xE2\x81\x87 ";  // SentencePiece's default " ⁇ "

class SpmVocabTokenizer final : public Tokenizer {
 public:
  SpmVocabTokenizer(SpmVocab v, std::string source, std::string kind, std::string model_bytes)
      : v_(std::move(v)), source_(std::move(source)), kind_(std::move(kind)), model_bytes_(std::move(model_bytes)) {
    complete_spm_vocab(v_, source_);
    collapse_ = *v_.remove_extra_whitespaces;
    byte_id_.fill(-1);
    for (size_t i = 0; i < v_.pieces.size(); ++i) {
      const auto id = static_cast<int32_t>(i);
      const std::string_view p = v_.pieces[i];
      switch (v_.types[i]) {
        case kNormal:
        case kUserDefined:
        case kUnused:
          mergeable_.emplace(p, id);
          if (v_.types[i] == kUserDefined) user_defined_.push_back(p);
          if (v_.types[i] == kUnused) has_unused_ = true;
          break;
        case kByte: {
          reserved_.emplace(p, id);
          int b = byte_piece_value(p);
          if (byte_id_[b] < 0) byte_id_[b] = id;
          byte_fallback_ = true;
          break;
        }
        default:
          reserved_.emplace(p, id);
      }
    }
    std::sort(user_defined_.begin(), user_defined_.end(),
              [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
    // Splitting the normalized text before each U+2581 that follows another character
    // cannot change the result when no piece could span such a boundary.
    // (Not with unused pieces: SentencePiece resegments them after merging the whole
    // text, with the split each one was last made from anywhere in it.)
    split_words_ = !has_unused_;
    for (const auto& [p, id] : mergeable_) {
      for (size_t at = p.find(kSpaceSymbol, 1); at != std::string_view::npos; at = p.find(kSpaceSymbol, at + 1)) {
        if (at < kSpaceSymbol.size() || p.substr(at - kSpaceSymbol.size(), kSpaceSymbol.size()) != kSpaceSymbol)
          split_words_ = false;
      }
    }
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    const std::string norm = normalize(text);
    std::vector<int32_t> out;
    out.reserve(norm.size() / 3 + 1);
    Scratch s;
    bool prev_unk = false;
    if (!split_words_) {
      encode_span(norm, 0, norm.size(), s, out, prev_unk);
      return out;
    }
    size_t begin = 0;
    for (size_t at = norm.find(kSpaceSymbol, 1); at != std::string::npos; at = norm.find(kSpaceSymbol, at + 1)) {
      if (at >= kSpaceSymbol.size() &&
          std::string_view(norm).substr(at - kSpaceSymbol.size(), kSpaceSymbol.size()) == kSpaceSymbol)
        continue;
      encode_span(norm, begin, at, s, out, prev_unk);
      begin = at;
    }
    encode_span(norm, begin, norm.size(), s, out, prev_unk);
    return out;
  }

  // As SentencePiece's decoder: byte runs become UTF-8 (U+FFFD per bad byte); the
  // leading U+2581 of the first piece goes (with remove_extra_whitespaces, of every
  // piece until some text has come out).
  std::string decode(std::span<const int32_t> ids) const override {
    std::string text, bytes;
    bool is_bos_ws = true, bos_ws_seen = false;
    const bool strip = v_.add_dummy_prefix || collapse_;
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab_size())
        fail("{}: token id {} is outside the vocabulary of {}", source_, id, vocab_size());
      const int32_t type = v_.types[static_cast<size_t>(id)];
      std::string_view piece = v_.pieces[static_cast<size_t>(id)];
      if (type == kByte) {
        bytes += static_cast<char>(byte_piece_value(piece));
        continue;
      }
      append_bytes_per_byte_lossy(text, bytes);
      bytes.clear();
      if (bos_ws_seen || !text.empty()) is_bos_ws = false;
      bos_ws_seen = false;
      if (type == kControl) continue;
      if (type == kUnknown) {
        text += kUnkSurface;
        continue;
      }
      if (is_bos_ws && strip && piece.substr(0, kSpaceSymbol.size()) == kSpaceSymbol) {
        piece.remove_prefix(kSpaceSymbol.size());
        bos_ws_seen = !collapse_;
      }
      text += replace_all(piece, kSpaceSymbol, " ");
    }
    append_bytes_per_byte_lossy(text, bytes);
    return text;
  }

  int32_t bos_id() const override { return v_.bos_id; }
  int32_t eos_id() const override { return v_.eos_id; }
  int64_t vocab_size() const override { return static_cast<int64_t>(v_.pieces.size()); }
  std::string kind() const override { return kind_; }
  void save_hf(const std::filesystem::path& dir) const override { save_spm_hf(v_, dir, model_bytes_); }

 private:
  struct Sym {
    int32_t prev, next;
    uint32_t start, len;
    bool freeze;
  };
  struct Pair {
    float score;
    int32_t left, right;
    uint32_t size;
  };
  struct PairLess {
    bool operator()(const Pair& a, const Pair& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };
  struct Scratch {
    std::vector<Sym> syms;
    std::vector<Pair> heap;
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
  };

  // SentencePiece's normalizer with an identity character map: optional leading /
  // trailing / repeated space removal, dummy prefix, ' ' -> U+2581, and U+FFFD for
  // each byte that does not start a valid UTF-8 sequence.
  std::string normalize(std::string_view in) const {
    std::string out;
    if (in.empty()) return out;
    out.reserve(in.size() + in.size() / 4 + 8);
    size_t i = 0;
    if (collapse_)
      while (i < in.size() && in[i] == ' ') ++i;
    if (v_.add_dummy_prefix) out += kSpaceSymbol;
    bool prev_space = collapse_;
    while (i < in.size()) {
      const size_t n = valid_utf8_prefix_len(in.substr(i));
      if (n == 0) {
        out += kReplacementChar;
        prev_space = false;
        ++i;
        continue;
      }
      if (in[i] == ' ') {
        if (!(collapse_ && prev_space)) out += kSpaceSymbol;
        prev_space = true;
      } else {
        out.append(in.substr(i, n));
        prev_space = false;
      }
      i += n;
    }
    if (collapse_)
      while (out.size() >= kSpaceSymbol.size() &&
             std::string_view(out).substr(out.size() - kSpaceSymbol.size()) == kSpaceSymbol)
        out.resize(out.size() - kSpaceSymbol.size());
    return out;
  }

  int32_t piece_to_id(std::string_view p) const {
    if (auto it = reserved_.find(p); it != reserved_.end()) return it->second;
    if (auto it = mergeable_.find(p); it != mergeable_.end()) return it->second;
    return v_.unk_id;
  }

  void encode_span(const std::string& norm, size_t begin, size_t end, Scratch& s, std::vector<int32_t>& out,
                   bool& prev_unk) const {
    if (begin >= end) return;
    const std::string_view text(norm);
    auto& syms = s.syms;
    syms.clear();
    for (size_t i = begin; i < end;) {
      Sym sym{static_cast<int32_t>(syms.size()) - 1, -1, static_cast<uint32_t>(i), 0, false};
      for (std::string_view u : user_defined_) {
        if (text.substr(i, u.size()) == u && i + u.size() <= end) {
          sym.len = static_cast<uint32_t>(u.size());
          sym.freeze = true;
          break;
        }
      }
      if (sym.len == 0) {
        size_t n = valid_utf8_prefix_len(text.substr(i, end - i));
        sym.len = static_cast<uint32_t>(n == 0 ? 1 : n);
      }
      i += sym.len;
      syms.push_back(sym);
    }
    for (size_t k = 0; k + 1 < syms.size(); ++k) syms[k].next = static_cast<int32_t>(k + 1);

    auto& heap = s.heap;
    heap.clear();
    if (has_unused_) s.rev_merge.clear();
    auto piece_of = [&](const Sym& a) { return text.substr(a.start, a.len); };
    auto maybe_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0 || syms[l].freeze || syms[r].freeze) return;
      const std::string_view merged = text.substr(syms[l].start, syms[l].len + syms[r].len);
      auto it = mergeable_.find(merged);
      if (it == mergeable_.end()) return;
      heap.push_back(Pair{v_.scores[static_cast<size_t>(it->second)], l, r, static_cast<uint32_t>(merged.size())});
      std::push_heap(heap.begin(), heap.end(), PairLess{});
      if (v_.types[static_cast<size_t>(it->second)] == kUnused)
        s.rev_merge[merged] = {piece_of(syms[l]), piece_of(syms[r])};
    };
    for (size_t k = 1; k < syms.size(); ++k) maybe_add(static_cast<int32_t>(k - 1), static_cast<int32_t>(k));

    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), PairLess{});
      const Pair top = heap.back();
      heap.pop_back();
      Sym& l = syms[top.left];
      Sym& r = syms[top.right];
      if (l.len == 0 || r.len == 0 || l.len + r.len != top.size) continue;
      l.len += r.len;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = top.left;
      r.len = 0;
      maybe_add(l.prev, top.left);
      maybe_add(top.left, l.next);
    }

    for (int32_t k = 0; k != -1; k = syms[k].next) emit(piece_of(syms[k]), s, out, prev_unk);
  }

  void emit(std::string_view piece, Scratch& s, std::vector<int32_t>& out, bool& prev_unk) const {
    const int32_t id = piece_to_id(piece);
    if (has_unused_ && id >= 0 && v_.types[static_cast<size_t>(id)] == kUnused) {
      if (auto it = s.rev_merge.find(piece); it != s.rev_merge.end()) {
        const auto parts = it->second;
        emit(parts.first, s, out, prev_unk);
        emit(parts.second, s, out, prev_unk);
        return;
      }
    }
    const bool is_unk = id < 0 || v_.types[static_cast<size_t>(id)] == kUnknown;
    if (is_unk && byte_fallback_) {
      for (char c : piece) {
        const int32_t b = byte_id_[static_cast<unsigned char>(c)];
        out.push_back(b >= 0 ? b : v_.unk_id);
      }
      prev_unk = false;
      return;
    }
    if (id < 0) return;              // no <unk> in this vocabulary: dropped
    if (is_unk && prev_unk) return;  // SentencePiece merges runs of unknown pieces
    out.push_back(id);
    prev_unk = is_unk;
  }

  SpmVocab v_;
  std::string source_, kind_, model_bytes_;
  std::unordered_map<std::string_view, int32_t> mergeable_, reserved_;
  std::vector<std::string_view> user_defined_;
  std::array<int32_t, 256> byte_id_{};
  bool byte_fallback_ = false, has_unused_ = false, collapse_ = false, split_words_ = true;
};

}  // namespace

std::shared_ptr<const Tokenizer> make_spm_tokenizer(SpmVocab vocab, const std::string& source, std::string kind,
                                                    std::string model_bytes) {
  return std::make_shared<SpmVocabTokenizer>(std::move(vocab), source, std::move(kind), std::move(model_bytes));
}

}  // namespace mlar::tok

namespace mlar {

std::shared_ptr<const Tokenizer> make_spm_vocab_tokenizer(SpmVocab vocab, const std::string& source) {
  return tok::make_spm_tokenizer(std::move(vocab), source, "gguf");
}

}  // namespace mlar
