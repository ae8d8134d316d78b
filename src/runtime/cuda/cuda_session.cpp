#include "runtime/cuda/cuda_session.h"

#include <vector>

#include "ops/cuda/device.h"
#include "ops/cuda/device_tensor.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/linear.h"
#include "ops/cuda/nll.h"
#include "runtime/cuda/cuda_layer.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {

using cuda::DeviceBuffer;
using cuda::DeviceTensor;

struct CudaSession::State {
  DType kv_dtype = DType::F32;
  ops::RopePairs pairs = ops::RopePairs::Half;
  DeviceTensor embed, final_norm, lm_head, inv_freq;
  std::vector<CudaLayer> layers;
  // Per layer: GQA K and V rows [max_tokens, n_kv d]; MLA k alone, rows [max_tokens, r + R].
  std::vector<DeviceBuffer> k_cache, v_cache;
  // h [n, D] residual stream; logits [rows, V]; ids [n] int32; positions [n] int64.
  DeviceBuffer h, logits, ids, pos;
  DeviceBuffer targets, nll;  // forward_nll: [n] int32 targets, [n] double NLL
  int64_t capacity = 0;
  CudaLayerScratch scratch;  // the layers' forward pass
  std::string kind = "gqa";
};

CudaSession::CudaSession(const Model& model, SessionOptions opts) : model_(model), s_(std::make_unique<State>()) {
  const ModelConfig& c = model.config;
  cuda::require_device(model.source);
  c.validate(model.source);
  check_weight_shapes(c, model.weights, model.source);
  if (!c.mla && opts.mla_eval != MlaEval::Auto)
    fail("{}: MLA evaluation '{}' asked for a GQA model", model.source, mla_eval_name(opts.mla_eval));
  if (c.mla && opts.mla_eval == MlaEval::Naive)
    fail("{}: --attn naive runs on the CPU only; on CUDA MLA layers evaluate absorbed (auto or absorbed)",
         model.source);
  if (opts.kv_dtype != DType::F32 && opts.kv_dtype != DType::BF16 && opts.kv_dtype != DType::F16)
    fail("{}: KV cache dtype {} (F32, BF16 or F16)", model.source, dtype_name(opts.kv_dtype));
  max_tokens_ = opts.max_tokens > 0 ? opts.max_tokens : c.max_position_embeddings;
  State& s = *s_;
  s.kv_dtype = opts.kv_dtype;
  s.pairs = rope_pairs(c.rope_layout);
  const auto inv = rope_inv_freq(c);
  s.inv_freq.shape = {static_cast<int64_t>(inv.size())};
  s.inv_freq.buf = DeviceBuffer(inv.size() * sizeof(float));
  cuda::upload(s.inv_freq.buf.data(), inv.data(), inv.size() * sizeof(float));

  const auto& W = model.weights;
  s.embed = cuda::to_device(W.embed);
  s.final_norm = cuda::to_device(W.final_norm, DType::F32);
  if (!W.lm_head.empty()) s.lm_head = cuda::to_device(W.lm_head);
  for (const auto& L : W.layers) {
    const int64_t l = static_cast<int64_t>(s.layers.size());
    s.layers.emplace_back(c, l, L);
    const CudaLayer& d = s.layers.back();
    if (d.is_mla()) s.kind = d.stored_absorbed() ? "mla-stored-absorbed" : "mla-absorbed";
    const size_t bytes = static_cast<size_t>(max_tokens_ * d.cache_cols(c)) * dtype_size(s.kv_dtype);
    s.k_cache.emplace_back(bytes);
    s.v_cache.emplace_back(d.is_mla() ? 0 : bytes);
  }
}

CudaSession::~CudaSession() = default;

size_t CudaSession::weight_bytes() const {
  const State& s = *s_;
  size_t b = s.embed.buf.bytes() + s.final_norm.buf.bytes() + s.lm_head.buf.bytes();
  for (const auto& L : s.layers) b += L.weight_bytes();
  return b;
}

void CudaSession::advance_zero(int64_t n) {
  if (n < 0 || n_past_ + n > max_tokens_)
    fail("advance_zero: {} tokens after {} exceed the context limit of {}", n, n_past_, max_tokens_);
  const ModelConfig& c = model_.config;
  const size_t esize = dtype_size(s_->kv_dtype);
  for (size_t l = 0; l < s_->layers.size(); ++l) {
    const int64_t cols = s_->layers[l].cache_cols(c);
    const size_t off = static_cast<size_t>(n_past_ * cols) * esize, bytes = static_cast<size_t>(n * cols) * esize;
    cuda::fill_zero(s_->k_cache[l].as<char>() + off, bytes);
    if (!s_->layers[l].is_mla()) cuda::fill_zero(s_->v_cache[l].as<char>() + off, bytes);
  }
  n_past_ += n;
}

std::string CudaSession::attention_kind() const { return s_->kind; }

int64_t CudaSession::kv_bytes_per_token() const {
  const ModelConfig& c = model_.config;
  int64_t values = 0;
  for (const auto& L : s_->layers) values += L.is_mla() ? L.cache_cols(c) : 2 * L.cache_cols(c);
  return values * static_cast<int64_t>(dtype_size(s_->kv_dtype));
}

size_t CudaSession::cache_bytes() const {
  size_t b = 0;
  for (size_t l = 0; l < s_->layers.size(); ++l) b += s_->k_cache[l].bytes() + s_->v_cache[l].bytes();
  return b;
}

const Tensor& CudaSession::forward(std::span<const int32_t> tokens, Logits which) {
  const int64_t rows = which == Logits::All ? static_cast<int64_t>(tokens.size()) : 1;
  const float* dl = run(tokens, rows);
  const int64_t V = model_.config.vocab_size;
  if (logits_.shape != Shape{rows, V}) logits_ = Tensor({rows, V});
  cuda::download(logits_.ptr(), dl, static_cast<size_t>(rows * V) * sizeof(float));
  return logits_;
}

void CudaSession::forward_nll(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                              std::span<double> nll) {
  check_nll_args(tokens, targets, nll);
  const int64_t n = static_cast<int64_t>(tokens.size()), V = model_.config.vocab_size;
  const float* dl = run(tokens, n);  // [n, V] on the device
  State& s = *s_;
  s.targets.reserve(static_cast<size_t>(n) * 4);
  s.nll.reserve(static_cast<size_t>(n) * 8);
  cuda::upload(s.targets.data(), targets.data(), static_cast<size_t>(n) * 4);
  cuda::row_nll(dl, V, n, V, s.targets.as<int32_t>(), s.nll.as<double>());
  cuda::download(nll.data(), s.nll.data(), static_cast<size_t>(n) * sizeof(double));
}

const float* CudaSession::run(std::span<const int32_t> tokens, int64_t rows) {
  const ModelConfig& c = model_.config;
  State& s = *s_;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t D = c.hidden_size, V = c.vocab_size;
  if (n == 0) fail("forward: no tokens");
  for (int32_t t : tokens)
    if (t < 0 || t >= V) fail("forward: token id {} outside the vocabulary of {}", t, V);
  if (n_past_ + n > max_tokens_)
    fail("forward: {} tokens after {} exceed the context limit of {}", n, n_past_, max_tokens_);
  if (n > s.capacity) {
    s.h.reserve(static_cast<size_t>(n * D) * 4);
    s.logits.reserve(static_cast<size_t>(n * V) * 4);
    s.ids.reserve(static_cast<size_t>(n) * 4);
    s.pos.reserve(static_cast<size_t>(n) * 8);
    s.scratch.reserve(c, n);
    s.capacity = n;
  }
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = n_past_ + i;
  cuda::upload(s.ids.data(), tokens.data(), static_cast<size_t>(n) * 4);
  cuda::upload(s.pos.data(), pos.data(), static_cast<size_t>(n) * 8);

  float* h = s.h.as<float>();  // [n, D] residual stream
  cuda::embed_rows(s.embed.rows(), s.ids.as<int32_t>(), h, n, D);
  for (size_t l = 0; l < s.layers.size(); ++l)
    s.layers[l].forward(c, h, n, n_past_, s.pos.as<int64_t>(), s.inv_freq.f32(), s.pairs,
                        {s.k_cache[l].data(), s.v_cache[l].data(), s.kv_dtype}, s.scratch);
  float* x = s.scratch.x.as<float>();  // [rows, D]
  cuda::rmsnorm(h + (n - rows) * D, D, s.final_norm.f32(), x, D, rows, D, static_cast<float>(c.rms_norm_eps));
  const DeviceTensor& out = s.lm_head.empty() ? s.embed : s.lm_head;
  cuda::linear(x, out, {}, s.logits.as<float>(), rows);
  cuda::synchronize();
  n_past_ += n;
  return s.logits.as<float>();
}

}  // namespace mlar
