// Rows of a KV cache in a storage dtype (F32 | BF16 | F16), growable, one row per
// token. Rows are written from f32 (rounded to nearest even) and read by the
// attention kernels in place (ops/kv_attention.h) or widened back to f32.
//
// With heads > 1 a row is heads pieces of cols / heads values, stored head-major:
// [heads, reserved, cols / heads], each head's pieces contiguous over the tokens, so
// a decode step reads every kv head as one stream (GQA keys and values). write and
// read still take and give whole rows.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/kv_attention.h"
#include "tensor/dtype.h"

namespace mlar {

class CacheRows {
 public:
  // Throws mlar::Error for a dtype other than F32, BF16, F16, or heads not dividing cols.
  CacheRows(DType dtype, int64_t cols, int64_t heads = 1);

  DType dtype() const { return dtype_; }
  int64_t cols() const { return cols_; }
  int64_t heads() const { return heads_; }
  int64_t head_cols() const { return cols_ / heads_; }
  // Elements from head h's piece of a row to head h + 1's (head_cols() when heads == 1).
  int64_t head_stride() const { return heads_ == 1 ? cols_ : reserved_ * head_cols(); }
  int64_t reserved() const { return reserved_; }
  int64_t bytes_per_row() const { return cols_ * static_cast<int64_t>(dtype_size(dtype_)); }
  // Grows storage to at least n rows, keeping the rows already written.
  void reserve(int64_t n);

  // Rows pos .. pos+n-1 = src rows ([n, cols], row stride src_stride) rounded.
  void write(int64_t pos, const float* src, int64_t src_stride, int64_t n);
  // dst rows ([n, cols], row stride dst_stride) = rows pos .. pos+n-1 widened.
  void read(int64_t pos, int64_t n, float* dst, int64_t dst_stride) const;
  // All rows from row 0, starting at column col0 (for the kernels). With heads > 1:
  // head 0's pieces (row stride head_cols()); head h starts h * head_stride() further
  // (col0 is then an element offset into that layout).
  ops::TypedRows view(int64_t col0 = 0) const;

 private:
  DType dtype_;
  int64_t cols_, heads_, reserved_ = 0;
  std::vector<unsigned char> bytes_;  // [heads, reserved, cols / heads] elements of dtype_
};

}  // namespace mlar
