#include "command.h"
#include "ops/threads.h"
#include "util/error.h"

namespace mlar::cli {

void ModelArgs::add(CLI::App* cmd) {
  cmd->add_option("MODEL", path, "HF model directory, .gguf file, or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", tokenizer,
                  "tokenizer file (tok*.bin, SentencePiece .model, tokenizer.json); needed for a llama2.c .bin");
}

Model ModelArgs::load() const { return load_model(path, LoadOptions{tokenizer}); }

const Tokenizer& require_tokenizer(const Model& m) {
  if (!m.tokenizer)
    fail("{}: model has no tokenizer; pass --tokenizer FILE (e.g. tok512.bin or tokenizer.model)", m.source);
  return *m.tokenizer;
}

void set_threads(int threads) {
  if (threads > 0) ops::set_cpu_threads(threads);  // the ops' thread pool (ops/threads.h)
}

void add_attn_option(CLI::App* cmd, std::string& attn) {
  cmd->add_option("--attn", attn,
                  "MLA attention evaluation: auto (per call: naive for prompts, absorbed for decode), naive "
                  "(expand per-head keys/values from the latent), absorbed (attend in latent space); MLA models only")
      ->check(CLI::IsMember({"auto", "naive", "absorbed"}))
      ->capture_default_str();
}

MlaEval attn_eval(const std::string& attn, const Model& m) {
  const auto e = mla_eval_from_name(attn);
  if (!e) fail("--attn {}: expected auto, naive or absorbed", attn);
  if (*e != MlaEval::Auto && !m.config.mla)
    fail("--attn {}: {} is a GQA model; naive/absorbed choose how MLA attention is evaluated and apply to MLA "
         "models only (convert it first, or leave --attn auto)",
         attn, m.source);
  return *e;
}

void add_dtype_option(CLI::App* cmd, std::string& dtype, const std::string& what) {
  dtype = "auto";
  cmd->add_option("--dtype", dtype,
                  what + ": auto (the source's weight dtype, e.g. BF16 for a BF16 checkpoint), F32, F16 or BF16")
      ->check(CLI::IsMember({"auto", "F32", "F16", "BF16"}))
      ->capture_default_str();
}

std::string out_dtype(const std::string& flag, const Model& source) {
  if (flag != "auto") return flag;
  return dtype_name(weight_dtype(source.weights));
}

void add_kv_dtype_option(CLI::App* cmd, std::string& kv_dtype) {
  cmd->add_option("--kv-dtype", kv_dtype,
                  "how the KV cache stores keys/values (or MLA latents): bf16 (what serving engines keep), f16, or "
                  "f32 (exact; K/V are computed in f32 and rounded to nearest even when cached)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}))
      ->capture_default_str();
}

DType kv_dtype_of(const std::string& kv_dtype) { return parse_write_dtype(kv_dtype, "--kv-dtype"); }

void add_device_option(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device,
                  std::string("where to compute: cpu, or cuda (an NVIDIA GPU; ") +
                      (cuda_built() ? "this build has the CUDA backend)" : "needs a build with -DMLAR_CUDA=ON)"))
      ->capture_default_str();
}

Device device_of(const std::string& device) { return parse_device(device, "--device"); }

void add_shard_option(CLI::App* cmd, uint64_t& max_shard_bytes) {
  cmd->add_option("--max-shard-bytes", max_shard_bytes,
                  "split safetensors weights into shards of at most this many bytes "
                  "(model-0000i-of-0000N.safetensors + index), as transformers does")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

}  // namespace mlar::cli
