#include "io/element_stream.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "util/error.h"
#include "util/half.h"

namespace mlar {
namespace {

float load(const void* src, DType t, uint64_t i) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, static_cast<const uint8_t*>(src) + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, static_cast<const uint8_t*>(src) + 2 * i, 2);
  return t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

void check_float(DType t, const char* role) {
  if (!dtype_is_float_convertible(t)) fail("{} dtype {} is not F32, F16 or BF16", role, dtype_name(t));
}

}  // namespace

void convert_elements(const void* src, DType src_t, void* dst, DType dst_t, uint64_t n) {
  check_float(src_t, "source");
  check_float(dst_t, "destination");
  if (src_t == dst_t) {
    std::memcpy(dst, src, n * dtype_size(src_t));
    return;
  }
  auto* out = static_cast<uint8_t*>(dst);
  if (dst_t == DType::F32) {
    for (uint64_t i = 0; i < n; ++i) {
      const float f = load(src, src_t, i);
      std::memcpy(out + 4 * i, &f, 4);
    }
    return;
  }
  const bool bf = dst_t == DType::BF16;
  for (uint64_t i = 0; i < n; ++i) {
    const float f = load(src, src_t, i);
    const uint16_t h = bf ? f32_to_bf16(f) : f32_to_f16(f);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

void write_elements(OutFd& out, const void* src, DType src_t, DType dst_t, uint64_t n) {
  check_float(src_t, "source");
  check_float(dst_t, "destination");
  if (src_t == dst_t) {
    const auto* p = static_cast<const uint8_t*>(src);
    const uint64_t bytes = n * dtype_size(src_t);
    constexpr uint64_t kMax = 1ull << 30;  // keep single write() calls well below 2 GiB
    for (uint64_t off = 0; off < bytes; off += kMax)
      out.write(p + off, static_cast<size_t>(std::min(kMax, bytes - off)));
    return;
  }
  const uint64_t chunk = std::min<uint64_t>(kStreamChunkElems, n);
  std::vector<uint8_t> buf(chunk * dtype_size(dst_t));  // one chunk in the disk type
  const size_t in_size = dtype_size(src_t);
  for (uint64_t i = 0; i < n; i += chunk) {
    const uint64_t k = std::min(chunk, n - i);
    convert_elements(static_cast<const uint8_t*>(src) + i * in_size, src_t, buf.data(), dst_t, k);
    out.write(buf.data(), k * dtype_size(dst_t));
  }
}

void write_chunks(OutFd& out, DType dst_t, uint64_t n, const ChunkFill& fill) {
  check_float(dst_t, "destination");
  const uint64_t chunk = std::min<uint64_t>(kStreamChunkElems, n);
  std::vector<uint8_t> buf(chunk * dtype_size(dst_t));
  for (uint64_t i = 0; i < n; i += chunk) {
    const uint64_t k = std::min(chunk, n - i);
    fill(i, k, buf.data());
    out.write(buf.data(), k * dtype_size(dst_t));
  }
}

ChunkFill scaled_chunks(const TypedTensor& t, double scale, DType disk) {
  return [&t, scale, disk](uint64_t first, uint64_t count, void* dst) {
    std::vector<float> buf(count);  // at most kStreamChunkElems values
    convert_values(static_cast<const uint8_t*>(t.data()) + first * dtype_size(t.dtype), t.dtype, buf.data(),
                   DType::F32, static_cast<int64_t>(count));
    for (float& x : buf) x = static_cast<float>(x * scale);
    convert_values(buf.data(), DType::F32, dst, disk, static_cast<int64_t>(count));
  };
}

}  // namespace mlar
