// Minimal protobuf wire-format reader for sentencepiece_model.proto's ModelProto
// (field numbers from that schema: pieces = 1, trainer_spec = 2, normalizer_spec = 3).
#include "tokenizer/spm_model_proto.h"

#include <cstring>

#include "tokenizer/spm_vocab.h"
#include "util/error.h"

namespace mlar::tok {
namespace {

struct Field {
  uint32_t number;
  uint32_t wire;
  uint64_t varint = 0;
  std::string_view bytes;  // wire type 2, or the 4/8 raw bytes of fixed32/fixed64
};

class Reader {
 public:
  Reader(std::string_view data, const std::string& source) : d_(data), source_(source) {}
  bool done() const { return pos_ >= d_.size(); }

  Field next() {
    Field f{};
    const uint64_t key = varint();
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7);
    switch (f.wire) {
      case 0:
        f.varint = varint();
        break;
      case 1:
        f.bytes = take(8);
        break;
      case 2:
        f.bytes = take(varint());
        break;
      case 5:
        f.bytes = take(4);
        break;
      default:
        fail("{}: not a SentencePiece model (protobuf wire type {} at byte {})", source_, f.wire, pos_);
    }
    return f;
  }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= d_.size()) fail("{}: not a SentencePiece model (truncated protobuf varint)", source_);
      const auto b = static_cast<unsigned char>(d_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    fail("{}: not a SentencePiece model (overlong protobuf varint)", source_);
  }
  std::string_view take(uint64_t n) {
    if (n > d_.size() - pos_) fail("{}: not a SentencePiece model (protobuf field runs past the end)", source_);
    auto s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view d_;
  size_t pos_ = 0;
  const std::string& source_;
};

float as_float(const Field& f) {
  float v = 0;
  if (f.wire == 5) std::memcpy(&v, f.bytes.data(), 4);
  return v;
}

}  // namespace

SpmModelInfo parse_spm_model(std::string_view bytes, const std::string& source) {
  SpmModelInfo info;
  SpmVocab& v = info.vocab;
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  bool add_dummy_prefix = true, remove_extra = true;
  Reader top(bytes, source);
  while (!top.done()) {
    const Field f = top.next();
    if (f.number == 1 && f.wire == 2) {
      std::string piece;
      float score = 0;
      int32_t type = kNormal;
      Reader r(f.bytes, source);
      while (!r.done()) {
        const Field g = r.next();
        if (g.number == 1 && g.wire == 2) piece = std::string(g.bytes);
        if (g.number == 2) score = as_float(g);
        if (g.number == 3 && g.wire == 0) type = static_cast<int32_t>(g.varint);
      }
      v.pieces.push_back(std::move(piece));
      v.scores.push_back(score);
      v.types.push_back(type);
    } else if (f.number == 2 && f.wire == 2) {
      Reader r(f.bytes, source);
      while (!r.done()) {
        const Field g = r.next();
        if (g.wire != 0) continue;
        const auto i = static_cast<int32_t>(g.varint);
        switch (g.number) {
          case 3:
            info.model_type = i;
            break;
          case 24:
            info.treat_whitespace_as_suffix = g.varint != 0;
            break;
          case 35:
            info.byte_fallback = g.varint != 0;
            break;
          case 40:
            v.unk_id = i;
            break;
          case 41:
            v.bos_id = i;
            break;
          case 42:
            v.eos_id = i;
            break;
          default:
            break;
        }
      }
    } else if (f.number == 3 && f.wire == 2) {
      Reader r(f.bytes, source);
      while (!r.done()) {
        const Field g = r.next();
        if (g.number == 1 && g.wire == 2) info.normalizer_name = std::string(g.bytes);
        if (g.number == 2 && g.wire == 2) info.charsmap_size = g.bytes.size();
        if (g.number == 3 && g.wire == 0) add_dummy_prefix = g.varint != 0;
        if (g.number == 4 && g.wire == 0) remove_extra = g.varint != 0;
        if (g.number == 5 && g.wire == 0) info.escape_whitespaces = g.varint != 0;
      }
    }
  }
  if (v.pieces.empty()) fail("{}: not a SentencePiece model (no pieces)", source);
  const auto n = static_cast<int32_t>(v.pieces.size());
  for (int32_t* id : {&v.unk_id, &v.bos_id, &v.eos_id})
    if (*id >= n) *id = -1;
  v.add_dummy_prefix = add_dummy_prefix;
  v.remove_extra_whitespaces = remove_extra;
  return info;
}

}  // namespace mlar::tok
