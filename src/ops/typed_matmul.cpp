#include "ops/typed_matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/cpu_features.h"
#include "ops/matmul.h"
#include "ops/parallel.h"
#include "ops/threads.h"
#include "ops/typed_kernels.h"
#include "util/error.h"

namespace mlar::ops {
namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelMacs = 1 << 17;
// Bytes of W rows per block of the streamed path.
constexpr int64_t kStreamBlockBytes = 128 << 10;
// Prefill tiles: this many W rows by this many input columns widened to f32 at a time
// (128 x 1024 floats = 512 KiB, within L2).
constexpr int64_t kTileRows = 128, kTileCols = 1024;
// Conversions of fewer elements run on one thread.
constexpr int64_t kParallelConvert = 1 << 20;

void check_dtype(DType t, const char* op) {
  if (t != DType::F32 && t != DType::BF16 && t != DType::F16)
    fail("{}: tensors of dtype {} are not supported (F32, BF16 or F16 only)", op, dtype_name(t));
}

int64_t elem_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

void add_bias(const float* bias, float* y, int64_t y_stride, int64_t n, int64_t c0, int64_t c1) {
  if (!bias) return;
  for (int64_t r = 0; r < n; ++r) {
    float* yr = y + r * y_stride;
    for (int64_t c = c0; c < c1; ++c) yr[c] += bias[c];
  }
}

const detail::TypedKernels& kernels_for(CpuLevel level) {
  switch (level) {
    case CpuLevel::Avx512Bf16:
    case CpuLevel::Avx512:
      return detail::avx512_kernels();
    case CpuLevel::Avx2:
      return detail::avx2_kernels();
    case CpuLevel::Scalar:
      break;
  }
  return detail::scalar_kernels();
}

const detail::TypedKernels& kernels() { return kernels_for(cpu_active_level()); }

// Activation rows up to which W is streamed through dot_rows rather than widened into
// tiles for sgemm (measured on a 2-core Zen 5, 14336x4096: with AVX-512 the streamed
// kernel beat OpenBLAS sgemm at every n tried, 1..256, for F32 weights too, so there
// larger n stream in passes of this many rows; with AVX2 it wins up to about 8).
int64_t stream_rows(CpuLevel level) {
  switch (level) {
    case CpuLevel::Avx512Bf16:
    case CpuLevel::Avx512:
      return 128;
    case CpuLevel::Avx2:
      return 8;
    case CpuLevel::Scalar:
      break;
  }
  return detail::kMaxDotRows;
}

// y rows [0, n) for n <= stream_rows: output rows split over threads; each thread
// takes blocks of W rows small enough to stay in L2 while every group of up to
// kMaxDotRows activation rows passes over them, so W comes from memory once.
void streamed(const detail::TypedKernels& k, const float* x, int64_t x_stride, const void* w, DType wt,
              const float* bias, float* y, int64_t y_stride, int64_t n, int64_t in, int64_t out) {
  const int64_t block = std::max<int64_t>(8, kStreamBlockBytes / (in * elem_bytes(wt)));
  const int64_t grain = pick_grain(out, n * in, kParallelMacs, 16, 8);
  parallel_for(out, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t b0 = c0; b0 < c1; b0 += block) {
      const int64_t b1 = std::min(c1, b0 + block);
      for (int64_t t = 0; t < n; t += detail::kMaxDotRows)
        k.dot_rows(w, wt, in, x + t * x_stride, x_stride, static_cast<int>(std::min<int64_t>(detail::kMaxDotRows, n - t)),
                   b0, b1, y + t * y_stride, y_stride);
    }
    add_bias(bias, y, y_stride, n, c0, c1);
  });
}

// Output columns [c0, c1) of all n rows: tiles of W widened to f32, then sgemm.
void widened_sgemm(const float* x, int64_t x_stride, const char* w, DType wt, float* y, int64_t y_stride, int64_t n,
                   int64_t in, int64_t c0, int64_t c1) {
  const auto& k = kernels();
  const int64_t cols = std::min(in, kTileCols), eb = elem_bytes(wt);
  thread_local std::vector<float> tile;  // [kTileRows, cols], reused by the calls of this thread
  if (tile.size() < static_cast<size_t>(kTileRows * cols)) tile.resize(static_cast<size_t>(kTileRows * cols));
  for (int64_t r0 = c0; r0 < c1; r0 += kTileRows) {
    const int64_t m = std::min(kTileRows, c1 - r0);
    for (int64_t k0 = 0; k0 < in; k0 += cols) {
      const int64_t kc = std::min(cols, in - k0);
      for (int64_t r = 0; r < m; ++r) k.widen(w + ((r0 + r) * in + k0) * eb, wt, tile.data() + r * kc, kc);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(m),
                  static_cast<int>(kc), 1.0f, x + k0, static_cast<int>(x_stride), tile.data(), static_cast<int>(kc),
                  k0 == 0 ? 0.0f : 1.0f, y + r0, static_cast<int>(y_stride));
    }
  }
}

}  // namespace

void matmul_typed(const float* x, int64_t x_stride, const void* w, DType wt, const float* bias, float* y,
                  int64_t y_stride, int64_t n, int64_t in, int64_t out) {
  check_dtype(wt, "matmul_typed");
  if (n <= 0 || out <= 0) return;
  if (in <= 0) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < out; ++c) y[r * y_stride + c] = bias ? bias[c] : 0.0f;
    return;
  }
  const CpuLevel level = cpu_active_level();
  const int64_t pass = stream_rows(level);
  if (n <= pass || level >= CpuLevel::Avx512) {
    for (int64_t t = 0; t < n; t += pass)
      streamed(kernels_for(level), x + t * x_stride, x_stride, w, wt, bias, y + t * y_stride, y_stride,
               std::min(pass, n - t), in, out);
    return;
  }
  if (wt == DType::F32) {
    matmul_strided(x, x_stride, static_cast<const float*>(w), bias, y, y_stride, n, in, out);
    return;
  }
  init_cpu_threads();
  const int64_t grain = pick_grain(out, n * in, kParallelMacs, 32, 16);
  parallel_for(out, grain, [&](int64_t c0, int64_t c1) {
    widened_sgemm(x, x_stride, static_cast<const char*>(w), wt, y, y_stride, n, in, c0, c1);
    add_bias(bias, y, y_stride, n, c0, c1);
  });
}

void gather_rows_typed(const void* table, DType t, const int32_t* ids, float* out, int64_t n, int64_t dim) {
  check_dtype(t, "gather_rows_typed");
  const auto* base = static_cast<const char*>(table);
  for (int64_t r = 0; r < n; ++r)
    to_f32(base + static_cast<int64_t>(ids[r]) * dim * elem_bytes(t), t, out + r * dim, dim);
}

void to_f32(const void* src, DType t, float* dst, int64_t n) {
  check_dtype(t, "to_f32");
  if (n <= 0) return;
  if (t == DType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  const auto& k = kernels();
  const auto* s = static_cast<const uint16_t*>(src);
  parallel_for(n, pick_grain(n, 1, kParallelConvert, 1 << 16, 64),
               [&](int64_t b, int64_t e) { k.widen(s + b, t, dst + b, e - b); });
}

void from_f32(const float* src, DType t, void* dst, int64_t n) {
  check_dtype(t, "from_f32");
  if (n <= 0) return;
  if (t == DType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  const auto& k = kernels();
  auto* d = static_cast<uint16_t*>(dst);
  parallel_for(n, pick_grain(n, 1, kParallelConvert, 1 << 16, 64),
               [&](int64_t b, int64_t e) { k.narrow(src + b, t, d + b, e - b); });
}

std::string cpu_level() { return cpu_level_name(cpu_active_level()); }

}  // namespace mlar::ops
