// Tensor data written element by element in bounded memory: conversion between the
// float storage types (F32, F16, BF16; round to nearest even) and the chunked
// writes the streaming writers (safetensors_stream.h, gguf_stream.h) share.
#pragma once
#include <cstdint>
#include <functional>

#include "tensor/dtype.h"
#include "tensor/typed_tensor.h"
#include "util/stream_file.h"

namespace mlar {

// Fills `count` elements, starting at element `first` of the tensor (row-major,
// the tensor's storage order), into `dst` in the type on disk. The writers call it
// with consecutive ranges covering the tensor, each of at most kStreamChunkElems.
using ChunkFill = std::function<void(uint64_t first, uint64_t count, void* dst)>;

constexpr uint64_t kStreamChunkElems = 1 << 20;

// Converts `n` elements from `src_t` to `dst_t` (each F32, F16 or BF16; a copy when
// equal). F32 -> F16/BF16 rounds to nearest even; F16 <-> BF16 goes through float32,
// which is exact, so that is one rounding too.
void convert_elements(const void* src, DType src_t, void* dst, DType dst_t, uint64_t n);

// Appends `n` elements of `src` (type `src_t`) to `out` as `dst_t`, converting in
// chunks of kStreamChunkElems (no copy when the types match).
void write_elements(OutFd& out, const void* src, DType src_t, DType dst_t, uint64_t n);

// The values of `t` times `scale` (computed in double, stored as float32 as
// scale_values does), then converted to `disk`: a fill for a rescaled tensor that is
// never materialised whole. `t` must outlive the fill.
ChunkFill scaled_chunks(const TypedTensor& t, double scale, DType disk);

// Appends `n` elements of type `dst_t` produced by `fill`, chunk by chunk.
void write_chunks(OutFd& out, DType dst_t, uint64_t n, const ChunkFill& fill);

}  // namespace mlar
