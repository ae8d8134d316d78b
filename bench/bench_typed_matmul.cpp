// bench_typed_matmul: the typed-weight kernels of ops/typed_matmul.h against the
// machine's read bandwidth.
//
//   bench_typed_matmul [--shapes 14336x4096,4096x4096] [--threads N] [--reps 5]
//                      [--levels avx512,avx2,scalar] [--prefill 64] [--small-n 1,2,3,4,5,8,16]
//                      [--bw-mb 1024] [--json]
//
// Read bandwidth: a streaming integer sum over a --bw-mb buffer, split over the same
// threads (parallel_for) as the kernels; best of --reps.
// Decode (n = 1) for each shape OUTxIN, dtype F32/BF16/F16 and level: ms per call,
// GB/s of weight bytes read, and that as a fraction of the read bandwidth; best of
// --reps passes. Each weight matrix is held in enough copies (cycled) that the pass
// reads at least 128 MiB, so the last-level cache cannot serve it.
// The F32 row "f32-blas" is ops::matmul_strided (OpenBLAS sgemv) for comparison.
// Small n: ms per call for n activation rows (n <= 4 stream W once, above that
// widened tiles and sgemm) at the first shape and level.
// Prefill: GFLOP/s of n = --prefill rows for F32 (OpenBLAS sgemm) and BF16/F16.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "read_spans.h"
#include "ops/cpu_features.h"
#include "ops/matmul.h"
#include "ops/parallel.h"
#include "ops/threads.h"
#include "ops/typed_matmul.h"
#include "util/error.h"
#include "util/half.h"

namespace {

using mlar::DType;
using mlar::bench::clock_type;
using mlar::bench::seconds_since;

const char* kUsage =
    "bench_typed_matmul [--shapes 14336x4096,4096x4096] [--threads N] [--reps 5]\n"
    "                   [--levels avx512,avx2,scalar] [--prefill 64] [--small-n 1,2,3,4,5,8,16]\n"
    "                   [--bw-mb 1024] [--json]\n"
    "Decode (n = 1) time, GB/s of weights read and the fraction of the measured read\n"
    "bandwidth for F32/BF16/F16 weights at each dispatch level (default: the best the\n"
    "CPU has); small-n times; prefill GFLOP/s for F32 against BF16/F16.\n";

constexpr int64_t kColdBytes = int64_t{128} << 20;

struct Shape {
  int64_t out, in;
};

struct Args {
  std::vector<Shape> shapes{{14336, 4096}, {4096, 4096}};
  int threads = 0;
  int reps = 5;
  std::vector<mlar::ops::CpuLevel> levels;
  int64_t prefill = 64;
  std::vector<int64_t> small_n{1, 2, 3, 4, 5, 8, 16};
  int64_t bw_mb = 1024;
  bool json = false;
};

Args parse(int argc, char** argv) {
  Args a;
  mlar::bench::parse_args(argc, argv, "bench_typed_matmul", kUsage, [&](const std::string& k, auto value) {
    if (k == "--shapes") {
      a.shapes.clear();
      for (const auto& s : mlar::bench::split_list(value())) {
        const size_t cut = s.find('x');
        if (cut == std::string::npos) mlar::fail("--shapes: expected OUTxIN items, got '{}'", s);
        const auto v = mlar::bench::int_list(s.substr(0, cut) + "," + s.substr(cut + 1), "--shapes");
        if (v.size() != 2) mlar::fail("--shapes: expected OUTxIN items, got '{}'", s);
        a.shapes.push_back({v[0], v[1]});
      }
    } else if (k == "--threads") {
      a.threads = static_cast<int>(mlar::bench::int_list(value(), k)[0]);
    } else if (k == "--reps") {
      a.reps = static_cast<int>(mlar::bench::int_list(value(), k)[0]);
    } else if (k == "--levels") {
      for (const auto& s : mlar::bench::split_list(value()))
        a.levels.push_back(mlar::ops::parse_cpu_level(s.c_str(), "--levels"));
    } else if (k == "--prefill") {
      a.prefill = mlar::bench::int_list(value(), k)[0];
    } else if (k == "--small-n") {
      a.small_n = mlar::bench::int_list(value(), k);
    } else if (k == "--bw-mb") {
      a.bw_mb = mlar::bench::int_list(value(), k)[0];
    } else if (k == "--json") {
      a.json = true;
    } else {
      return false;
    }
    return true;
  });
  if (a.levels.empty()) a.levels.push_back(mlar::ops::cpu_active_level());
  return a;
}

// GB/s of a streaming read of `mb` MiB over the ops threads (best of reps).
double read_bandwidth(int64_t mb, int reps) {
  const int64_t n = mb * (int64_t{1} << 20) / 8;
  std::vector<uint64_t> buf(static_cast<size_t>(n));
  mlar::ops::parallel_for(n, n / (4 * mlar::ops::cpu_threads()) + 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
  });
  const int64_t chunks = 4 * mlar::ops::cpu_threads(), grain = (n + chunks - 1) / chunks;
  std::vector<uint64_t> sums(static_cast<size_t>(chunks));
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    mlar::ops::parallel_for(n, grain, [&](int64_t b, int64_t e) {
      sums[static_cast<size_t>(b / grain)] =
          mlar::bench::sum_words(reinterpret_cast<const unsigned char*>(buf.data() + b), e - b);
    });
    best = std::min(best, seconds_since(t0));
  }
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  if (total != static_cast<uint64_t>(n) * static_cast<uint64_t>(n - 1) / 2) mlar::fail("bandwidth: wrong sum");
  return static_cast<double>(n * 8) / best / 1e9;
}

// `copies` copies of random weights [out, in] stored as t, back to back.
std::vector<uint8_t> make_weights(const Shape& s, DType t, int64_t copies) {
  const int64_t count = s.out * s.in, eb = static_cast<int64_t>(mlar::dtype_size(t));
  std::vector<float> w(static_cast<size_t>(count));
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (auto& v : w) {  // xorshift: fast enough for 10^8 values
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    v = static_cast<float>(static_cast<int64_t>(state >> 40) - (int64_t{1} << 23)) / float(1 << 23) * 0.05f;
  }
  std::vector<uint8_t> out(static_cast<size_t>(count * eb * copies));
  mlar::ops::from_f32(w.data(), t, out.data(), count);
  for (int64_t c = 1; c < copies; ++c) std::memcpy(out.data() + c * count * eb, out.data(), static_cast<size_t>(count * eb));
  return out;
}

// Best seconds per call of fn(copy) over reps passes through all copies.
template <class F>
double best_per_call(int reps, int64_t copies, F fn) {
  fn(0);  // warm-up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    for (int64_t c = 0; c < copies; ++c) fn(c);
    best = std::min(best, seconds_since(t0) / static_cast<double>(copies));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  if (a.threads > 0) mlar::ops::set_cpu_threads(a.threads);
  const double bw = read_bandwidth(a.bw_mb, a.reps);
  nlohmann::json report{{"machine", mlar::bench::machine_json()},
                        {"threads", mlar::ops::cpu_threads()},
                        {"cpu_max_level", mlar::ops::cpu_level_name(mlar::ops::cpu_max_level())},
                        {"read_bandwidth_gbs", bw},
                        {"decode", nlohmann::json::array()},
                        {"small_n", nlohmann::json::array()},
                        {"prefill", nlohmann::json::array()}};
  if (!a.json) fmt::print("threads {}, read bandwidth {:.1f} GB/s ({} MiB streaming sum)\n", mlar::ops::cpu_threads(), bw, a.bw_mb);

  for (const Shape& s : a.shapes) {
    const auto x = std::vector<float>(static_cast<size_t>(std::max(a.prefill, int64_t{16}) * s.in), 0.5f);
    std::vector<float> y(static_cast<size_t>(std::max(a.prefill, int64_t{16}) * s.out));
    for (DType t : {DType::F32, DType::BF16, DType::F16}) {
      const int64_t bytes = s.out * s.in * static_cast<int64_t>(mlar::dtype_size(t));
      const int64_t copies = std::max<int64_t>(1, (kColdBytes + bytes - 1) / bytes);
      const auto w = make_weights(s, t, copies);
      auto decode_row = [&](const std::string& level, double sec) {
        const double gbs = static_cast<double>(bytes) / sec / 1e9;
        report["decode"].push_back({{"out", s.out}, {"in", s.in}, {"dtype", mlar::dtype_name(t)}, {"level", level},
                                    {"ms", sec * 1e3}, {"gbs", gbs}, {"of_bandwidth", gbs / bw}});
        if (!a.json)
          fmt::print("decode {:>5}x{:<5} {:<4} {:<8} {:8.3f} ms  {:6.1f} GB/s  {:5.2f} of read bandwidth\n", s.out, s.in,
                     mlar::dtype_name(t), level, sec * 1e3, gbs, gbs / bw);
      };
      for (auto level : a.levels) {
        mlar::ops::set_cpu_level(level);
        const double sec = best_per_call(a.reps, copies, [&](int64_t c) {
          mlar::ops::matmul_typed(x.data(), s.in, w.data() + c * bytes, t, nullptr, y.data(), s.out, 1, s.in, s.out);
        });
        decode_row(mlar::ops::cpu_level(), sec);
      }
      mlar::ops::set_cpu_level(a.levels.front());
      if (t == DType::F32)
        decode_row("f32-blas", best_per_call(a.reps, copies, [&](int64_t c) {
                     mlar::ops::matmul_strided(x.data(), s.in, reinterpret_cast<const float*>(w.data() + c * bytes),
                                               nullptr, y.data(), s.out, 1, s.in, s.out);
                   }));
      if (&s == &a.shapes.front())
        for (int64_t n : a.small_n) {
          const double sec = best_per_call(a.reps, copies, [&](int64_t c) {
            mlar::ops::matmul_typed(x.data(), s.in, w.data() + c * bytes, t, nullptr, y.data(), s.out, n, s.in, s.out);
          });
          report["small_n"].push_back({{"out", s.out}, {"in", s.in}, {"dtype", mlar::dtype_name(t)}, {"n", n},
                                       {"level", mlar::ops::cpu_level()}, {"ms", sec * 1e3}});
          if (!a.json)
            fmt::print("n={:<3}  {:>5}x{:<5} {:<4} {:<8} {:8.3f} ms  ({:.3f} ms per row)\n", n, s.out, s.in,
                       mlar::dtype_name(t), mlar::ops::cpu_level(), sec * 1e3, sec * 1e3 / static_cast<double>(n));
        }
      if (a.prefill > 0) {
        std::vector<float> xp(static_cast<size_t>(a.prefill * s.in), 0.25f), yp(static_cast<size_t>(a.prefill * s.out));
        const double sec = best_per_call(std::max(1, a.reps / 2), 1, [&](int64_t) {
          mlar::ops::matmul_typed(xp.data(), s.in, w.data(), t, nullptr, yp.data(), s.out, a.prefill, s.in, s.out);
        });
        const double gflops = 2.0 * static_cast<double>(a.prefill * s.in * s.out) / sec / 1e9;
        report["prefill"].push_back({{"out", s.out}, {"in", s.in}, {"dtype", mlar::dtype_name(t)}, {"n", a.prefill},
                                     {"level", mlar::ops::cpu_level()}, {"ms", sec * 1e3}, {"gflops", gflops}});
        if (!a.json)
          fmt::print("prefill n={} {:>5}x{:<5} {:<4} {:<8} {:8.2f} ms  {:6.1f} GFLOP/s\n", a.prefill, s.out, s.in,
                     mlar::dtype_name(t), mlar::ops::cpu_level(), sec * 1e3, gflops);
      }
    }
  }
  if (a.json) fmt::print("{}\n", report.dump(2));
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_typed_matmul: {}\n", e.what());
  return 1;
}
