#include "runtime/cache_rows.h"

#include <algorithm>

#include "util/error.h"

namespace mlar {

CacheRows::CacheRows(DType dtype, int64_t cols) : dtype_(dtype), cols_(cols) {
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F16)
    fail("KV cache: dtype {} not supported (F32, BF16 or F16)", dtype_name(dtype));
}

void CacheRows::reserve(int64_t n) {
  if (n <= reserved_) return;
  bytes_.resize(static_cast<size_t>(n * bytes_per_row()));  // keeps the first rows
  reserved_ = n;
}

void CacheRows::write(int64_t pos, const float* src, int64_t src_stride, int64_t n) {
  if (pos < 0 || pos + n > reserved_) fail("KV cache: write of rows {}..{} past {} reserved", pos, pos + n, reserved_);
  ops::round_rows(src, src_stride, n, cols_, bytes_.data() + static_cast<size_t>(pos * bytes_per_row()), dtype_,
                  cols_);
}

void CacheRows::read(int64_t pos, int64_t n, float* dst, int64_t dst_stride) const {
  if (pos < 0 || pos + n > reserved_) fail("KV cache: read of rows {}..{} past {} reserved", pos, pos + n, reserved_);
  ops::TypedRows r = view();
  r.data = bytes_.data() + static_cast<size_t>(pos * bytes_per_row());
  ops::widen_rows(r, n, cols_, dst, dst_stride);
}

ops::TypedRows CacheRows::view(int64_t col0) const {
  ops::TypedRows r;
  r.data = bytes_.data();
  r.dtype = dtype_;
  r.stride = cols_;
  return ops::offset_cols(r, col0);
}

}  // namespace mlar
