#include "runtime/carried_states.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "runtime/decoder.h"
#include "runtime/gqa_attention.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {

std::vector<double> CarriedStates::moment_sum(const ModelConfig&, const LayerWeights&) const { return {}; }

void check_token_windows(const ModelConfig& c, const TokenWindows& windows, const std::string& what) {
  if (windows.empty()) fail("{}: no windows to carry", what);
  const size_t len = windows.front().size();
  if (len < 2) fail("{}: windows of {} tokens (at least 2: BOS and one token)", what, len);
  for (const auto& w : windows) {
    if (w.size() != len) fail("{}: windows of {} and {} tokens (one length for all)", what, len, w.size());
    for (int32_t t : w)
      if (t < 0 || t >= c.vocab_size) fail("{}: token id {} outside the vocabulary of {}", what, t, c.vocab_size);
  }
}

CpuCarriedStates::CpuCarriedStates(const Model& src, const TokenWindows& windows, int64_t max_in_memory)
    : count_(static_cast<int64_t>(windows.size())),
      len_(windows.empty() ? 0 : static_cast<int64_t>(windows.front().size())),
      dim_(src.config.hidden_size) {
  check_token_windows(src.config, windows, "calibration");
  const int64_t n = count_ * len_ * dim_;
  if (bytes() <= max_in_memory) {
    owned_ = std::make_unique<float[]>(static_cast<size_t>(n));
    data_ = owned_.get();
  } else {
    std::string path = (std::filesystem::temp_directory_path() / "mlar-calib-states-XXXXXX").string();
    std::vector<char> name(path.begin(), path.end());
    name.push_back('\0');
    const int fd = mkstemp(name.data());
    if (fd < 0) fail("{}: cannot create the calibration state file: {}", path, std::strerror(errno));
    unlink(name.data());
    if (ftruncate(fd, static_cast<off_t>(bytes())) != 0) {
      const int e = errno;
      close(fd);
      fail("{}: cannot size the calibration state file to {} bytes: {}", path, bytes(), std::strerror(e));
    }
    void* p = mmap(nullptr, static_cast<size_t>(bytes()), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) fail("{}: cannot map the calibration state file: {}", path, std::strerror(errno));
    mapped_ = p;
    data_ = static_cast<float*>(p);
  }
  for (int64_t i = 0; i < count_; ++i)
    ops::embed_rows(src.weights.embed, windows[static_cast<size_t>(i)].data(), window(i), len_);
}

CpuCarriedStates::~CpuCarriedStates() {
  if (mapped_) munmap(mapped_, static_cast<size_t>(bytes()));
}

void CpuCarriedStates::attention_inputs(const ModelConfig& c, const LayerWeights& L, const InputFn& f,
                                        int64_t max_windows) const {
  std::vector<float> x(static_cast<size_t>(len_ * dim_));  // [len, D]
  const int64_t n = max_windows > 0 ? std::min(max_windows, count_) : count_;
  for (int64_t i = 0; i < n; ++i) {
    ops::rmsnorm(window(i), L.attn_norm.ptr(), x.data(), len_, dim_, static_cast<float>(c.rms_norm_eps));
    f(i, x.data(), len_);
  }
}

void CpuCarriedStates::advance(const ModelConfig& c, int64_t layer, const LayerWeights& L,
                               const MlaLayerWeights* mla) {
  std::unique_ptr<Attention> attn;
  if (c.mla) {
    if (!mla) fail("carried states: layer {}: an MLA config without MLA weights", layer);
    attn = std::make_unique<MlaAttention>(c, layer, *mla);
  } else {
    attn = std::make_unique<GqaAttention>(c, L, rope_inv_freq(c));
  }
  ForwardScratch scratch;
  for (int64_t i = 0; i < count_; ++i) {
    std::unique_ptr<LayerCache> cache = attn->make_cache(DType::F32);  // calibration: exact f32 states
    cache->reserve(len_);
    decoder_layer_forward(c, L, *attn, window(i), len_, 0, *cache, scratch);
  }
}

}  // namespace mlar
