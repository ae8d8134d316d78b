#include "runtime/cuda/cuda_session.h"

#include <cmath>
#include <vector>

#include "ops/cuda/attention.h"
#include "ops/cuda/device.h"
#include "ops/cuda/device_tensor.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/linear.h"
#include "ops/cuda/nll.h"
#include "runtime/cuda/cuda_mla_layer.h"
#include "runtime/cuda/device_workspace.h"
#include "runtime/rope_table.h"
#include "util/error.h"

namespace mlar {

using cuda::DeviceBuffer;
using cuda::DeviceTensor;
using cuda::linear;

namespace {

struct DeviceLayer {
  DeviceTensor attn_norm, ffn_norm, q_norm, k_norm;  // F32
  DeviceTensor wq, wk, wv, wo;                       // file dtype, [out, in]
  DeviceTensor bq, bk, bv;                           // F32 or empty
  DeviceTensor w_gate, w_up, w_down;
  std::unique_ptr<CudaMlaLayer> mla;  // MLA layers (then wq..bv are empty)
  // GQA: K and V rows [max_tokens, n_kv * d]; MLA: k_cache alone, rows [max_tokens, r + R].
  DeviceBuffer k_cache, v_cache;
};

DeviceTensor f32_to_device(const TypedTensor& t) { return cuda::to_device(t, DType::F32); }

}  // namespace

struct CudaSession::State {
  DType kv_dtype = DType::F32;
  ops::RopePairs pairs = ops::RopePairs::Half;
  DeviceTensor embed, final_norm, lm_head, inv_freq;
  std::vector<DeviceLayer> layers;
  // Scratch, grown to the largest call: h, x, a [n, D]; q, att [n, n_h d]; k, v [n, n_kv d];
  // gate, up [n, F]; logits [rows, V]; ids [n] int32; positions [n] int64.
  DeviceBuffer h, x, a, q, att, k, v, gate, up, logits, ids, pos;
  DeviceBuffer targets, nll;  // forward_nll: [n] int32 targets, [n] double NLL
  int64_t capacity = 0;
  DeviceWorkspace mla_ws;  // the MLA layers' scratch
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
  s.final_norm = f32_to_device(W.final_norm);
  if (!W.lm_head.empty()) s.lm_head = cuda::to_device(W.lm_head);
  const int64_t kvd = c.num_kv_heads * c.head_dim;
  const size_t cache_bytes = static_cast<size_t>(max_tokens_ * kvd) * dtype_size(s.kv_dtype);
  for (const auto& L : W.layers) {
    DeviceLayer d;
    d.attn_norm = f32_to_device(L.attn_norm);
    d.ffn_norm = f32_to_device(L.ffn_norm);
    d.w_gate = cuda::to_device(L.w_gate);
    d.w_up = cuda::to_device(L.w_up);
    d.w_down = cuda::to_device(L.w_down);
    if (c.mla) {
      const int64_t l = static_cast<int64_t>(s.layers.size());
      d.mla = std::make_unique<CudaMlaLayer>(c, l, L.mla);
      s.kind = d.mla->stored_absorbed() ? "mla-stored-absorbed" : "mla-absorbed";
      d.k_cache = DeviceBuffer(static_cast<size_t>(max_tokens_ * d.mla->cache_cols()) * dtype_size(s.kv_dtype));
      s.layers.push_back(std::move(d));
      continue;
    }
    d.q_norm = f32_to_device(L.q_norm);
    d.k_norm = f32_to_device(L.k_norm);
    d.wq = cuda::to_device(L.wq);
    d.wk = cuda::to_device(L.wk);
    d.wv = cuda::to_device(L.wv);
    d.wo = cuda::to_device(L.wo);
    d.bq = f32_to_device(L.bq);
    d.bk = f32_to_device(L.bk);
    d.bv = f32_to_device(L.bv);
    d.k_cache = DeviceBuffer(cache_bytes);
    d.v_cache = DeviceBuffer(cache_bytes);
    s.layers.push_back(std::move(d));
  }
}

CudaSession::~CudaSession() = default;

size_t CudaSession::weight_bytes() const {
  const State& s = *s_;
  size_t b = s.embed.buf.bytes() + s.final_norm.buf.bytes() + s.lm_head.buf.bytes();
  for (const auto& L : s.layers)
    for (const DeviceTensor* t : {&L.attn_norm, &L.ffn_norm, &L.q_norm, &L.k_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.bq,
                                  &L.bk, &L.bv, &L.w_gate, &L.w_up, &L.w_down})
      b += t->buf.bytes();
  for (const auto& L : s.layers)
    if (L.mla) b += L.mla->weight_bytes();
  return b;
}

void CudaSession::advance_zero(int64_t n) {
  if (n < 0 || n_past_ + n > max_tokens_)
    fail("advance_zero: {} tokens after {} exceed the context limit of {}", n, n_past_, max_tokens_);
  const ModelConfig& c = model_.config;
  const size_t esize = dtype_size(s_->kv_dtype);
  for (auto& L : s_->layers) {
    const int64_t cols = L.mla ? L.mla->cache_cols() : c.num_kv_heads * c.head_dim;
    const size_t off = static_cast<size_t>(n_past_ * cols) * esize, bytes = static_cast<size_t>(n * cols) * esize;
    cuda::fill_zero(L.k_cache.as<char>() + off, bytes);
    if (!L.mla) cuda::fill_zero(L.v_cache.as<char>() + off, bytes);
  }
  n_past_ += n;
}

std::string CudaSession::attention_kind() const { return s_->kind; }

int64_t CudaSession::kv_bytes_per_token() const {
  const ModelConfig& c = model_.config;
  int64_t values = 0;
  for (const auto& L : s_->layers) values += L.mla ? L.mla->cache_cols() : 2 * c.num_kv_heads * c.head_dim;
  return values * static_cast<int64_t>(dtype_size(s_->kv_dtype));
}

size_t CudaSession::cache_bytes() const {
  size_t b = 0;
  for (const auto& L : s_->layers) b += L.k_cache.bytes() + L.v_cache.bytes();
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
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, d = c.head_dim, qd = nh * d, kvd = nkv * d;
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (n == 0) fail("forward: no tokens");
  for (int32_t t : tokens)
    if (t < 0 || t >= V) fail("forward: token id {} outside the vocabulary of {}", t, V);
  if (n_past_ + n > max_tokens_)
    fail("forward: {} tokens after {} exceed the context limit of {}", n, n_past_, max_tokens_);
  if (n > s.capacity) {
    auto grow = [](DeviceBuffer& b, int64_t count, size_t esize) { b.reserve(static_cast<size_t>(count) * esize); };
    grow(s.h, n * D, 4);
    grow(s.x, n * D, 4);
    grow(s.a, n * D, 4);
    grow(s.q, n * qd, 4);
    grow(s.att, n * qd, 4);
    grow(s.k, n * kvd, 4);
    grow(s.v, n * kvd, 4);
    grow(s.gate, n * F, 4);
    grow(s.up, n * F, 4);
    grow(s.logits, n * V, 4);
    grow(s.ids, n, 4);
    grow(s.pos, n, 8);
    s.capacity = n;
  }
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = n_past_ + i;
  cuda::upload(s.ids.data(), tokens.data(), static_cast<size_t>(n) * 4);
  cuda::upload(s.pos.data(), pos.data(), static_cast<size_t>(n) * 8);

  float* h = s.h.as<float>();  // [n, D] residual stream
  float* x = s.x.as<float>();  // [n, D] normalised input of a block
  float* a = s.a.as<float>();  // [n, D] block output
  float* q = s.q.as<float>();  // [n, n_h d]
  float* att = s.att.as<float>();
  float* k = s.k.as<float>();  // [n, n_kv d]
  float* v = s.v.as<float>();
  float* gate = s.gate.as<float>();  // [n, F]
  float* up = s.up.as<float>();
  const int64_t* dpos = s.pos.as<int64_t>();
  const size_t kv_row_bytes = static_cast<size_t>(kvd) * dtype_size(s.kv_dtype);

  cuda::embed_rows(s.embed.rows(), s.ids.as<int32_t>(), h, n, D);
  ops::AttentionDims dims;
  dims.n_q = n;
  dims.n_heads = nh;
  dims.n_kv_heads = nkv;
  dims.dk = d;
  dims.dv = d;
  dims.q_start = n_past_;
  dims.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  // GQA attention block (MLA.md §1): x [n, D] -> a [n, D], K/V rows appended to the cache.
  auto gqa_block = [&](DeviceLayer& L) {
    linear(x, L.wq, L.bq, q, n);
    linear(x, L.wk, L.bk, k, n);
    linear(x, L.wv, L.bv, v, n);
    if (c.qk_norm) {
      cuda::rmsnorm(q, d, L.q_norm.f32(), q, d, n * nh, d, eps);
      cuda::rmsnorm(k, d, L.k_norm.f32(), k, d, n * nkv, d, eps);
    }
    cuda::rope(q, n, nh, d, d, qd, dpos, s.inv_freq.f32(), s.pairs);
    cuda::rope(k, n, nkv, d, d, kvd, dpos, s.inv_freq.f32(), s.pairs);
    char* kc = L.k_cache.as<char>() + static_cast<size_t>(n_past_) * kv_row_bytes;
    char* vc = L.v_cache.as<char>() + static_cast<size_t>(n_past_) * kv_row_bytes;
    cuda::round_rows(k, kvd, n, kvd, {kc, s.kv_dtype, kvd});
    cuda::round_rows(v, kvd, n, kvd, {vc, s.kv_dtype, kvd});
    cuda::attention(q, {L.k_cache.data(), s.kv_dtype, kvd}, {L.v_cache.data(), s.kv_dtype, kvd}, att, dims);
    linear(att, L.wo, {}, a, n);
  };
  for (auto& L : s.layers) {
    cuda::rmsnorm(h, D, L.attn_norm.f32(), x, D, n, D, eps);
    if (L.mla)
      L.mla->forward(x, n, n_past_, dpos, L.k_cache.data(), s.kv_dtype, s.mla_ws, a);
    else
      gqa_block(L);
    cuda::add(h, a, h, n * D);

    cuda::rmsnorm(h, D, L.ffn_norm.f32(), x, D, n, D, eps);
    linear(x, L.w_gate, {}, gate, n);
    linear(x, L.w_up, {}, up, n);
    cuda::swiglu(gate, up, gate, n * F);
    linear(gate, L.w_down, {}, a, n);
    cuda::add(h, a, h, n * D);
  }
  cuda::rmsnorm(h + (n - rows) * D, D, s.final_norm.f32(), x, D, rows, D, eps);
  const DeviceTensor& out = s.lm_head.empty() ? s.embed : s.lm_head;
  linear(x, out, {}, s.logits.as<float>(), rows);
  cuda::synchronize();
  n_past_ += n;
  return s.logits.as<float>();
}

}  // namespace mlar
