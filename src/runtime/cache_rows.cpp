#include "runtime/cache_rows.h"

#include <algorithm>

#include "util/error.h"

namespace mlar {

CacheRows::CacheRows(DType dtype, int64_t cols, int64_t heads) : dtype_(dtype), cols_(cols), heads_(heads) {
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F16)
    fail("KV cache: dtype {} not supported (F32, BF16 or F16)", dtype_name(dtype));
  if (heads < 1 || cols % heads != 0) fail("KV cache: {} heads do not divide rows of {} values", heads, cols);
}

void CacheRows::reserve(int64_t n) {
  if (n <= reserved_) return;
  if (heads_ == 1) {
    bytes_.resize(static_cast<size_t>(n * bytes_per_row()));  // keeps the first rows
  } else {  // every head's block moves to its place in the larger buffer
    const size_t old_block = static_cast<size_t>(reserved_ * bytes_per_row() / heads_);
    const size_t new_block = static_cast<size_t>(n * bytes_per_row() / heads_);
    std::vector<unsigned char> grown(new_block * static_cast<size_t>(heads_));
    for (int64_t h = 0; h < heads_; ++h)
      std::copy_n(bytes_.data() + static_cast<size_t>(h) * old_block, old_block,
                  grown.data() + static_cast<size_t>(h) * new_block);
    bytes_.swap(grown);
  }
  reserved_ = n;
}

void CacheRows::write(int64_t pos, const float* src, int64_t src_stride, int64_t n) {
  if (pos < 0 || pos + n > reserved_) fail("KV cache: write of rows {}..{} past {} reserved", pos, pos + n, reserved_);
  const int64_t hc = head_cols();
  for (int64_t h = 0; h < heads_; ++h) {
    unsigned char* dst = bytes_.data() + static_cast<size_t>(h * head_stride() + pos * hc) * dtype_size(dtype_);
    ops::round_rows(src + h * hc, src_stride, n, hc, dst, dtype_, hc);
  }
}

void CacheRows::read(int64_t pos, int64_t n, float* dst, int64_t dst_stride) const {
  if (pos < 0 || pos + n > reserved_) fail("KV cache: read of rows {}..{} past {} reserved", pos, pos + n, reserved_);
  const int64_t hc = head_cols();
  for (int64_t h = 0; h < heads_; ++h)
    ops::widen_rows(ops::offset_cols(view(), h * head_stride() + pos * hc), n, hc, dst + h * hc, dst_stride);
}

ops::TypedRows CacheRows::view(int64_t col0) const {
  ops::TypedRows r;
  r.data = bytes_.data();
  r.dtype = dtype_;
  r.stride = head_cols();
  return ops::offset_cols(r, col0);
}

}  // namespace mlar
