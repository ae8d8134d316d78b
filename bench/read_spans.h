// The physical bound of a memory-bound step, measured on the bytes the step itself
// reads: sum every 8-byte word of a set of memory spans (weights, cache rows) over the
// ops threads, as the kernels spread their reads, and time it. Interleaved with the
// timed steps, it follows a shared host's bandwidth as it moves (bench_context).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bench_util.h"
#include "ops/parallel.h"

namespace mlar::bench {

// Sum of p[0, n) 8-byte words (unaligned allowed): four independent accumulators, AVX2 where the CPU has it.
__attribute__((target("avx2"))) inline uint64_t sum_words_avx2(const unsigned char* p, int64_t n) {
  __m256i s[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 4; ++k)
      s[k] = _mm256_add_epi64(s[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8 * (i + 4 * k))));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi64(_mm256_add_epi64(s[0], s[1]), _mm256_add_epi64(s[2], s[3])));
  uint64_t total = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) {
    uint64_t w;
    std::memcpy(&w, p + 8 * i, 8);
    total += w;
  }
  return total;
}

inline uint64_t sum_words_plain(const unsigned char* p, int64_t n) {
  uint64_t s0 = 0, s1 = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t w;
    std::memcpy(&w, p + 8 * i, 8);
    (i & 1 ? s1 : s0) += w;
  }
  return s0 + s1;
}

inline uint64_t sum_words(const unsigned char* p, int64_t n) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2 ? sum_words_avx2(p, n) : sum_words_plain(p, n);
}

struct Span {
  const void* data;
  size_t bytes;
};

// Seconds to read every span once (whole 8-byte words), over the ops threads in chunks of 256 KiB; best of
// `reps`. The sum is returned through `checksum` so the reads cannot be dropped.
inline double read_spans_seconds(const std::vector<Span>& spans, int reps, uint64_t* checksum = nullptr) {
  struct Chunk {
    const unsigned char* p;
    int64_t words;
  };
  constexpr size_t kChunk = size_t{1} << 18;
  std::vector<Chunk> chunks;
  for (const Span& s : spans)
    for (size_t off = 0; off + 8 <= s.bytes; off += kChunk)
      chunks.push_back({static_cast<const unsigned char*>(s.data) + off,
                        static_cast<int64_t>(std::min(kChunk, s.bytes - off) / 8)});
  std::vector<uint64_t> sums(chunks.size());
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    ops::parallel_for(static_cast<int64_t>(chunks.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sums[static_cast<size_t>(i)] = sum_words(chunks[i].p, chunks[i].words);
    });
    best = std::min(best, seconds_since(t0));
  }
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  if (checksum) *checksum ^= total;
  return best;
}

}  // namespace mlar::bench
