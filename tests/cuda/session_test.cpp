// runtime/cuda CudaSession against the CPU Session on the same model: logits of a
// prompt and of decode steps, perplexity of the shared dev text, greedy generation.
// Models: stories260K (F32 weights, real), llama3ish (BF16 HF directory, real,
// head size 64), and random Qwen2-shaped (q/k/v biases) and Qwen3-shaped (q/k norms)
// models with odd sizes.
// Tolerances: logits 1e-4 of the largest |logit| with F32 caches (f32 arithmetic on the
// same rounded weights and cache values, other summation orders); 2e-3 with BF16 caches,
// where a key or value computed a few f32 ulps apart can round to the neighbouring bf16
// value (2^-8 relative; seen: 3.8e-4 on a stored-absorbed repeat model); perplexity 1e-5 relative with
// F32 weights, 1e-3 with BF16 weights (issue 15's bounds; measured far below);
// greedy text identical.
#include "runtime/cuda/cuda_session.h"

#include <cstdlib>

#include "runtime/compare.h"

#include "common/test_data.h"
#include "cuda_test_util.h"
#include "real_models.h"
#include "io/load_model.h"
#include "runtime/generate.h"
#include "runtime/perplexity.h"
#include "convert/convert.h"
#include "mla/mla_test_models.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/linear.h"
#include "runtime/random_mla_model.h"
#include "runtime/random_model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace mlar::cudatest {
namespace {

using CudaSessionTest = CudaTest;
using test::data_path;


ModelConfig odd_config(bool qwen3) {
  ModelConfig c;
  c.arch = qwen3 ? "qwen3" : "qwen2";
  c.vocab_size = 301;
  c.hidden_size = 72;
  c.intermediate_size = 136;
  c.num_layers = 3;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 256;
  c.attention_bias = !qwen3;
  c.qk_norm = qwen3;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

std::vector<int32_t> some_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return ids;
}

// Prompt of 37 tokens (all logits), then 5 decode steps; worst |gpu - cpu| / max |logit|.
// The CPU side evaluates MLA layers as `cpu_eval` says (the GPU always absorbed).
double logits_gap(const Model& m, DType kv, MlaEval cpu_eval = MlaEval::Auto) {
  SessionOptions o;
  o.max_tokens = 64;
  o.kv_dtype = kv;
  CudaSession gpu(m, o);
  o.mla_eval = cpu_eval;
  Session cpu(m, o);
  auto ids = some_ids(42, m.config.vocab_size, 5);
  double worst = 0;
  auto cmp = [&](const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.shape, b.shape);
    worst = std::max(worst, max_diff(a.data, b.data) / max_abs(a.data));
  };
  cmp(cpu.forward(std::span<const int32_t>(ids.data(), 37), Logits::All),
      gpu.forward(std::span<const int32_t>(ids.data(), 37), Logits::All));
  for (size_t i = 37; i < ids.size(); ++i) cmp(cpu.decode(ids[i]), gpu.decode(ids[i]));
  EXPECT_EQ(gpu.n_past(), 42);
  return worst;
}

// Exact f32 products on both sides (MLAR_CUDA_GEMM=exact: llama3ish's BF16 weights would otherwise take
// TF32 tensor cores in the 37-token prompt; that path is bounded below).
TEST_F(CudaSessionTest, LogitsMatchCpuOnRealAndOddModels) {
  setenv("MLAR_CUDA_GEMM", "exact", 1);
  for (DType kv : {DType::F32, DType::BF16}) {
    const double tol = kv == DType::F32 ? 1e-4 : 2e-3;
    EXPECT_LE(logits_gap(stories(), kv), tol) << "stories260K " << dtype_name(kv);
    EXPECT_LE(logits_gap(llama3ish(), kv), tol) << "llama3ish " << dtype_name(kv);
    EXPECT_LE(logits_gap(random_model(odd_config(false), 7), kv), tol) << "qwen2-shaped " << dtype_name(kv);
    EXPECT_LE(logits_gap(random_model(odd_config(true), 8), kv), tol) << "qwen3-shaped " << dtype_name(kv);
  }
  unsetenv("MLAR_CUDA_GEMM");
}

// The default for BF16 weights: prompts on TF32 tensor cores (activations rounded to a 10-bit mantissa).
TEST_F(CudaSessionTest, Tf32PromptLogitsStayCloseToCpu) {
  ASSERT_TRUE(cuda::gemm_uses_tf32(DType::BF16));
  const double gap = logits_gap(llama3ish(), DType::F32);
  EXPECT_LE(gap, 2e-2);
  std::printf("[ tf32 prompt ] llama3ish: max |gpu - cpu| / max |logit| = %.2e\n", gap);
}

// MLA layouts (tests/mla's random variants: DeepSeek with q_lora, biases, latent norm,
// per-layer ranks, Llama 3 / linear rope scaling; repeat; stored absorption), against
// both CPU evaluations, and the exact repeat conversion of stories260K.
TEST_F(CudaSessionTest, MlaLogitsMatchCpu) {
  using RL = RopeLayout;
  using RS = RopeScaling::Type;
  const std::vector<test::MlaVariant> variants = {
      {.name = "deepseek", .latent_norm = true},
      {.name = "deepseek_qlora_bias", .q_lora = true, .bias = true, .latent_norm = true},
      {.name = "deepseek_interleaved_llama3", .bias = true, .layout = RL::Interleaved, .scaling = RS::Llama3},
      {.name = "deepseek_per_layer", .q_lora = true, .latent_norm = true, .per_layer = true},
      {.name = "repeat_bias_interleaved", .repeat = true, .bias = true, .layout = RL::Interleaved},
      {.name = "repeat_compressed_per_layer", .repeat = true, .per_layer = true, .rank = 12},
      {.name = "absorbed_deepseek", .q_lora = true, .bias = true, .latent_norm = true, .absorbed = true},
      {.name = "absorbed_repeat", .repeat = true, .bias = true, .absorbed = true},
  };
  for (const auto& v : variants) {
    const Model m = random_mla_model(test::mla_config(v), 11);
    for (DType kv : {DType::F32, DType::BF16})
      for (MlaEval e : {MlaEval::Naive, MlaEval::Absorbed})
        EXPECT_LE(logits_gap(m, kv, e), kv == DType::F32 ? 1e-4 : 2e-3)
            << v.name << " " << dtype_name(kv) << " cpu " << mla_eval_name(e);
  }
  Model src = load_model(data_path("models/stories260K/stories260K.bin"));
  const Model repeat = convert_model(std::move(src), ConvertOptions{});
  EXPECT_LE(logits_gap(repeat, DType::F32), 1e-4) << "stories260K repeat";
  EXPECT_LE(logits_gap(stories(), DType::F32), 1e-4) << "stories260K source";
}

// A DeepSeek-shaped MLA layer wide enough for the tensor-core kernel (BF16 cache,
// dk = r + d_r = 192, dv = r = 128): queries and probabilities are rounded to bf16
// there, so the bound is 5e-3 of the largest logit.
TEST_F(CudaSessionTest, MlaTensorCorePathInASession) {
  ModelConfig c = test::small_config();
  c.hidden_size = 256;
  c.intermediate_size = 384;
  c.num_heads = 16;
  c.num_kv_heads = 4;
  c.head_dim = 64;
  MlaConfig m;
  m.rope_mode = RopeMode::Extend;
  m.kv_lora_rank = 128;
  m.qk_nope_head_dim = 64;
  m.qk_rope_head_dim = 64;
  m.num_rope_heads = 1;
  m.v_head_dim = 64;
  m.latent_norm = true;
  m.softmax_scale = 1.0 / std::sqrt(128.0);
  c.mla = m;
  const Model model = random_mla_model(c, 12);
  const ops::AttentionDims d = mla_decode_dims(16, 192, 128, 0);
  cuda::DeviceBuffer probe(192 * 2 * 4);
  const ops::TypedRows rows{probe.data(), DType::BF16, 192};
  ASSERT_EQ(cuda::attention_path(rows, rows, d), cuda::AttentionPath::TensorCore);
  const double gap = logits_gap(model, DType::BF16, MlaEval::Absorbed);
  EXPECT_LE(gap, 5e-3);
  std::printf("[ tensor-core MLA session ] max |gpu - cpu| / max |logit| = %.2e\n", gap);
}

double ppl(Sequence& s, const std::vector<int32_t>& ids) {
  PerplexityOptions po;
  po.ctx = 256;
  po.max_tokens = 4096;
  return perplexity(s, ids, po).ppl;
}

TEST_F(CudaSessionTest, PerplexityMatchesCpu) {
  const std::string text = read_utf8_file(data_path("text/tinystories-dev.txt"));
  struct Row {
    const Model* m;
    double tol;
  };
  // stories260K: F32 weights, exact f32 products (1e-5); llama3ish: BF16 weights, TF32 prompts (the
  // issue's 1e-3 for bf16 weights).
  for (Row r : {Row{&stories(), 1e-5}, Row{&llama3ish(), 1e-3}}) {
    const auto ids = r.m->tokenizer->encode(text);
    SessionOptions o;
    o.max_tokens = 256;
    o.kv_dtype = DType::F32;
    Session cpu(*r.m, o);
    CudaSession gpu(*r.m, o);
    const double a = ppl(cpu, ids), b = ppl(gpu, ids);
    EXPECT_NEAR(b / a, 1.0, r.tol) << r.m->source << ": cpu " << a << " gpu " << b;
    std::printf("[ perplexity ] %s: cpu %.6f cuda %.6f (relative %.2e)\n", r.m->source.c_str(), a, b,
                std::fabs(b / a - 1.0));
  }
}

TEST_F(CudaSessionTest, GreedyStoryIsTheCpuStory) {
  const Model& m = stories();
  const auto& tok = *m.tokenizer;
  std::vector<int32_t> prompt{tok.bos_id()};
  for (int32_t t : tok.encode("Once upon a time")) prompt.push_back(t);
  GenerateOptions g;
  g.max_new_tokens = 60;
  std::vector<int32_t> a, b;
  SessionOptions o;
  o.max_tokens = 128;
  Session cpu(m, o);
  CudaSession gpu(m, o);
  generate(cpu, prompt, g, [&](int32_t t) { a.push_back(t); return true; });
  generate(gpu, prompt, g, [&](int32_t t) { b.push_back(t); return true; });
  EXPECT_EQ(a, b);
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), b.begin(), b.end());
  EXPECT_EQ(tok.decode(all).rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << tok.decode(all);
}

// compare_models with B on the GPU (what `compare A A --device-b cuda` runs): the same model on both backends
// agrees on every position's logits and argmax, and the two greedy texts are one.
TEST_F(CudaSessionTest, CompareCpuAgainstCudaOnTheSameModel) {
  const Model& m = stories();
  const auto ids = m.tokenizer->encode(read_utf8_file(data_path("text/tinystories-dev.txt")));
  CompareOptions o;
  o.ctx = 128;
  o.max_tokens = 1024;
  o.kv_dtype = DType::F32;
  o.prompt = {m.tokenizer->bos_id()};
  o.gen_tokens = 40;
  o.open_b = [](const Model& mm, const SessionOptions& so) { return std::make_unique<CudaSession>(mm, so); };
  const CompareResult r = compare_models(m, m, ids, o);
  EXPECT_EQ(r.tokens, 1024);
  EXPECT_LE(r.max_abs_logit_diff, 1e-5 * r.max_abs_logit);
  EXPECT_LE(r.mean_kl, 1e-9);
  EXPECT_EQ(r.greedy_agree, r.tokens);
  EXPECT_TRUE(r.gen_identical);
  EXPECT_FALSE(r.gen_a.empty());
  std::printf("[ compare cpu vs cuda ] max |dlogit| %.2e of %.2f, mean KL %.2e\n", r.max_abs_logit_diff,
              r.max_abs_logit, r.mean_kl);
}

TEST_F(CudaSessionTest, ContextLimitAndBadIdsAreRefusedWithoutChange) {
  SessionOptions o;
  o.max_tokens = 8;
  CudaSession gpu(stories(), o);
  auto ids = some_ids(8, 512, 3);
  gpu.forward(std::span<const int32_t>(ids.data(), 6));
  EXPECT_THROW(gpu.forward(std::span<const int32_t>(ids.data(), 3)), Error);
  EXPECT_EQ(gpu.n_past(), 6);
  const int32_t bad = 512;
  EXPECT_THROW(gpu.decode(bad), Error);
  EXPECT_EQ(gpu.n_past(), 6);
}

}  // namespace
}  // namespace mlar::cudatest
