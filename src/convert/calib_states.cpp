#include "convert/calib_states.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "runtime/decoder.h"
#include "util/error.h"

namespace mlar {

CalibStates::CalibStates(const Model& src, const CalibWindows& w, int64_t max_in_memory)
    : count_(w.count()), len_(w.len), dim_(src.config.hidden_size) {
  const int64_t n = count_ * len_ * dim_;
  if (n <= 0) fail("calibration: no windows to carry");
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
  for (int64_t i = 0; i < count_; ++i) {
    const std::vector<int32_t> ids = w.window(i);
    for (int32_t t : ids)
      if (t < 0 || t >= src.config.vocab_size)
        fail("calibration: token id {} outside the vocabulary of {}", t, src.config.vocab_size);
    ops::embed_rows(src.weights.embed, ids.data(), window(i), len_);
  }
}

CalibStates::~CalibStates() {
  if (mapped_) munmap(mapped_, static_cast<size_t>(bytes()));
}

void CalibStates::attention_inputs(const ModelConfig& c, const LayerWeights& L,
                                   const std::function<void(int64_t, const float*, int64_t)>& f) const {
  std::vector<float> x(static_cast<size_t>(len_ * dim_));  // [len, D]
  for (int64_t i = 0; i < count_; ++i) {
    ops::rmsnorm(window(i), L.attn_norm.ptr(), x.data(), len_, dim_, static_cast<float>(c.rms_norm_eps));
    f(i, x.data(), len_);
  }
}

void CalibStates::advance(const ModelConfig& c, const LayerWeights& L, const Attention& attn,
                          const std::function<void(int64_t, int64_t)>& progress) {
  ForwardScratch scratch;
  for (int64_t i = 0; i < count_; ++i) {
    std::unique_ptr<LayerCache> cache = attn.make_cache(DType::F32);  // calibration: exact f32 states
    cache->reserve(len_);
    decoder_layer_forward(c, L, attn, window(i), len_, 0, *cache, scratch);
    if (progress) progress(i + 1, count_);
  }
}

}  // namespace mlar
