// Shared by the libFuzzer targets: the input as a file the path-based readers can
// open, and a workout for any tokenizer a reader builds.
//
// Every target feeds its bytes through the real reading code and catches
// mlar::Error, the one exception a reader may throw for bad input. Anything else
// (another exception, a sanitizer report, a broken invariant checked here) ends
// the run and libFuzzer keeps the input.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "io/mla_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace mlar::fuzz {

[[noreturn]] inline void invariant_failed(const char* what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}
#define MLAR_FUZZ_CHECK(cond) \
  do {                        \
    if (!(cond)) ::mlar::fuzz::invariant_failed(#cond); \
  } while (0)

// An mlar::Error the reader threw: the expected outcome for bad input. Printed
// when MLAR_FUZZ_VERBOSE is set (to check that the seeds are accepted).
inline void expected(const Error& e) {
  static const bool verbose = std::getenv("MLAR_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "mlar::Error: %s\n", e.what());
}

// The last (up to) 64 bytes of the input: text for the tokenizer to encode.
inline std::string_view tail_text(const uint8_t* data, size_t size) {
  const size_t n = size < 64 ? size : 64;
  return {reinterpret_cast<const char*>(data + size - n), n};
}

// The input bytes in an anonymous memory file (memfd), opened by path as
// /proc/self/fd/N: a regular file for MappedFile, never on disk.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) {
    fd_ = ::memfd_create("mlar-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) invariant_failed("memfd_create");
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) invariant_failed("write to memfd");
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// What the runtime relies on in any config a reader accepts: positive sizes and
// BOS/EOS ids it can feed to the embedding.
inline void check_config(const ModelConfig& c) {
  MLAR_FUZZ_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_layers > 0);
  MLAR_FUZZ_CHECK(c.num_heads > 0 && c.num_kv_heads > 0 && c.head_dim > 0 && c.num_heads % c.num_kv_heads == 0);
  MLAR_FUZZ_CHECK(c.bos_token_id >= 0 && c.bos_token_id < c.vocab_size);
  MLAR_FUZZ_CHECK(c.eos_token_id >= 0 && c.eos_token_id < c.vocab_size);
}

// An MLA config a reader accepts: validate_mla_config passes (or throws
// mlar::Error), and the first and last layers' cache sizes and tensor shapes form.
inline void check_mla_config(const ModelConfig& c, const std::string& source) {
  validate_mla_config(c, source);
  for (int64_t layer : {int64_t{0}, c.num_layers - 1}) {
    (void)c.kv_values_per_token_layer(layer);
    for (const MlaTensorSlot& s : mla_layer_slots(c, layer)) (void)shape_str(s.shape);
  }
}

// Encodes a few short strings (ASCII, spaces, control and special-looking text,
// non-ASCII, broken UTF-8, and `extra`, a piece of the fuzz input) and decodes what
// comes out, plus every id of a small vocabulary. Ids out of range must give
// mlar::Error; encode must only produce ids inside the vocabulary.
inline void exercise_tokenizer(const Tokenizer& t, std::string_view extra = {}) {
  static const std::string kTexts[] = {
      "Once upon a time, there was a little girl. 123 4567!",
      "  two  spaces\tand\ttabs\nnew\r\nlines  ",
      "<s>x</s><unk><|endoftext|> [INST]",
      "\xC3\xBC" "ber caf\xC3\xA9 \xE2\x96\x81\xE2\x96\x81 \xF0\x9F\x98\x80 \xE4\xBD\xA0\xE5\xA5\xBD",
      std::string("bad \xFF\xFE utf8 \xE2\x96 \xC3", 17) + std::string(1, '\0') + "nul",
      "a",
      "",
  };
  const int64_t n = t.vocab_size();
  MLAR_FUZZ_CHECK(n >= 0);
  auto round_trip = [&](std::string_view text) {
    const std::vector<int32_t> ids = t.encode(text);
    for (int32_t id : ids) MLAR_FUZZ_CHECK(id >= 0 && id < n);
    (void)t.decode(ids);
  };
  for (const auto& text : kTexts) round_trip(text);
  round_trip(extra);
  // A sparse vocabulary may have ids without a token: decoding them is an error.
  auto try_decode = [&](std::span<const int32_t> ids) {
    try {
      (void)t.decode(ids);
    } catch (const Error&) {
    }
  };
  std::vector<int32_t> all;
  for (int32_t id = 0; id < n && id < 300; ++id) {
    all.push_back(id);
    const int32_t one[1] = {id};
    try_decode(one);
  }
  try_decode(all);
  for (int64_t bad : {int64_t{-1}, n}) {
    if (bad > INT32_MAX) continue;
    const int32_t ids[1] = {static_cast<int32_t>(bad)};
    bool threw = false;
    try {
      (void)t.decode(ids);
    } catch (const Error&) {
      threw = true;
    }
    MLAR_FUZZ_CHECK(threw);
  }
  MLAR_FUZZ_CHECK(t.bos_id() >= -1 && t.bos_id() < n);
  MLAR_FUZZ_CHECK(t.eos_id() >= -1 && t.eos_id() < n);
  (void)t.kind();
}

}  // namespace mlar::fuzz
