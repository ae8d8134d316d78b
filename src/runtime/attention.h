// One layer's attention block, behind a small interface so that the cache layout
// and the evaluation can be swapped per layer without touching the decoder loop:
// GqaAttention (MLA.md §1) and MlaAttention (latent + rope-key cache, naive or
// absorbed evaluation, §2).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/kv_cache.h"
#include "runtime/workspace.h"
#include "tensor/dtype.h"

namespace mlar {

class Attention {
 public:
  virtual ~Attention() = default;

  // "gqa", "mla-naive", ... (for reports).
  virtual std::string kind() const = 0;

  // An empty cache of the type this layer reads and writes, values stored as `dtype`
  // (F32 | BF16 | F16).
  virtual std::unique_ptr<LayerCache> make_cache(DType dtype) const = 0;

  // x:   [n, D] the normalised hidden states of n tokens at positions pos0 .. pos0+n-1.
  // out: [n, D] the block's output (after the output projection, before the residual).
  // `cache` holds this layer's entries for positions [0, pos0) and has room for n
  // more; forward writes entries pos0 .. pos0+n-1 and attends causally over them.
  // `ws` is scratch owned by the caller (one per session); out must not alias x.
  virtual void forward(const float* x, int64_t n, int64_t pos0, LayerCache& cache, Workspace& ws,
                       float* out) const = 0;
};

}  // namespace mlar
