#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "runtime/compare.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/utf8.h"

namespace mlar::cli {
namespace {

std::string attention_name(const ModelConfig& c) {
  if (!c.mla) return "gqa";
  return fmt::format("mla {}{}", rope_mode_name(c.mla->rope_mode), c.mla->absorbed ? " absorbed" : "");
}

}  // namespace

void register_compare(CLI::App& app) {
  struct Args {
    std::string a, b, tokenizer, text, prompt, kv_dtype = "bf16", device = "cpu", device_b;
    int64_t ctx = 256, max_tokens = 4096, n = 32;
    int threads = 0;
    bool json = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "compare",
      "Run two models (e.g. a GQA model and its MLA conversion) on the same text and report how far apart they\n"
      "are. The text is tokenized with A's tokenizer (B's vocabulary size must match) and cut into windows as\n"
      "`eval` does (CTX-1 ids per window, BOS prepended, each window a fresh sequence). Reported: the largest\n"
      "|logit_A - logit_B|, the mean KL(A||B) per scored token (softmax in double), both perplexities, greedy\n"
      "agreement (positions where the argmax is the same), greedy generation from BOS + PROMPT with each model\n"
      "and whether the two texts are identical, and each model's KV cache bytes per token (values stored as --kv-dtype, the same for both).");
  cmd->add_option("A", args->a, "reference model (HF or MLA directory, .gguf, llama2.c .bin)")->required();
  cmd->add_option("B", args->b, "model compared with A")->required();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer file for models that carry none (e.g. tok512.bin)");
  cmd->add_option("--text", args->text, "UTF-8 text file")->required();
  cmd->add_option("--ctx", args->ctx, "window length including BOS")->check(CLI::Range(int64_t{2}, int64_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--max-tokens", args->max_tokens, "compare only the first M tokens (0 = all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--prompt,-p", args->prompt, "prompt of the greedy generation (BOS is prepended)");
  cmd->add_option("-n,--tokens", args->n, "tokens to generate greedily with each model (0 = none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "compute threads (0 = all cores)");
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->add_flag("--quiet,-q", args->quiet, "no progress on stderr");
  add_kv_dtype_option(cmd, args->kv_dtype);
  add_device_option(cmd, args->device);
  cmd->add_option("--device-b", args->device_b,
                  "where B runs, when not where A does (e.g. A --device cpu, B --device-b cuda: the same model on "
                  "both backends)");
  cmd->callback([args] {
    const DType kv_dtype = kv_dtype_of(args->kv_dtype);
    set_threads(args->threads);
    const std::string text = read_utf8_file(args->text);
    const Model a = load_model(args->a, LoadOptions{args->tokenizer});
    const Model b = load_model(args->b, LoadOptions{args->tokenizer});
    const Tokenizer& tok = require_tokenizer(a);
    if (b.config.vocab_size != a.config.vocab_size)
      fail("{}: vocabulary of {} tokens, but {} has {}; compare needs the same vocabulary", b.source,
           b.config.vocab_size, a.source, a.config.vocab_size);
    const std::vector<int32_t> ids = tok.encode(text);
    if (ids.empty()) fail("{}: text has no tokens", args->text);

    CompareOptions opts;
    const Device dev_a = device_of(args->device);
    const Device dev_b = args->device_b.empty() ? dev_a : parse_device(args->device_b, "--device-b");
    opts.open_a = [dev_a](const Model& m, const SessionOptions& so) { return open_sequence(m, so, dev_a); };
    opts.open_b = [dev_b](const Model& m, const SessionOptions& so) { return open_sequence(m, so, dev_b); };
    opts.ctx = args->ctx;
    opts.kv_dtype = kv_dtype;
    opts.max_tokens = args->max_tokens;
    opts.gen_tokens = args->n;
    opts.prompt = {tok.bos_id()};
    const auto body = tok.encode(args->prompt);
    opts.prompt.insert(opts.prompt.end(), body.begin(), body.end());
    const int64_t total = args->max_tokens > 0 ? std::min<int64_t>(args->max_tokens, ids.size()) : ids.size();
    Progress progress("compare", total, !args->quiet);
    opts.progress = [&](int64_t done, int64_t) { progress.update(done); };
    const CompareResult r = compare_models(a, b, ids, opts);
    progress.finish();
    // Prompt + continuation, decoded with A's tokenizer.
    auto full_text = [&](const std::vector<int32_t>& gen) {
      std::vector<int32_t> all = opts.prompt;
      all.insert(all.end(), gen.begin(), gen.end());
      return tok.decode(all);
    };
    const std::string text_a = full_text(r.gen_a), text_b = full_text(r.gen_b);
    const bool texts_identical = text_a == text_b;

    if (args->json) {
      auto model_json = [](const Model& m, double ppl, const KvFootprint& kv) {
        return nlohmann::json{{"path", m.source},
                              {"attention", attention_name(m.config)},
                              {"perplexity", ppl},
                              {"kv_bytes_per_token", kv.bytes_per_token()}};
      };
      nlohmann::json j = {{"a", model_json(a, r.ppl_a, r.kv_a)},
                          {"b", model_json(b, r.ppl_b, r.kv_b)},
                          {"text", args->text},
                          {"ctx", args->ctx},
                          {"kv_dtype", dtype_flag_name(kv_dtype)},
                          {"devices", {device_name(dev_a), device_name(dev_b)}},
                          {"tokens_compared", r.tokens},
                          {"windows", r.windows},
                          {"max_abs_logit_diff", r.max_abs_logit_diff},
                          {"max_abs_logit", r.max_abs_logit},
                          {"mean_kl", r.mean_kl},
                          {"max_kl", r.max_kl},
                          {"greedy_agreement", r.greedy_agreement},
                          {"greedy_agree_positions", r.greedy_agree},
                          {"generation",
                           {{"prompt", args->prompt},
                            {"tokens", args->n},
                            {"text_a", text_a},
                            {"text_b", text_b},
                            {"ids_a", r.gen_a},
                            {"ids_b", r.gen_b},
                            {"identical", texts_identical},
                            {"ids_identical", r.gen_identical}}},
                          {"seconds", r.seconds}};
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("A  {} ({}, {} KV cache {} bytes/token, {})\n", a.source, attention_name(a.config),
               dtype_flag_name(kv_dtype), r.kv_a.bytes_per_token(), device_name(dev_a));
    fmt::print("B  {} ({}, {} KV cache {} bytes/token, {})\n", b.source, attention_name(b.config),
               dtype_flag_name(kv_dtype), r.kv_b.bytes_per_token(), device_name(dev_b));
    fmt::print("tokens compared    {} in {} windows of <= {}\n", r.tokens, r.windows, args->ctx);
    fmt::print("max |dlogit|       {:.3e} (largest |logit| of A: {:.3f})\n", r.max_abs_logit_diff, r.max_abs_logit);
    fmt::print("mean KL(A||B)      {:.3e} nats/token (max {:.3e})\n", r.mean_kl, r.max_kl);
    fmt::print("perplexity         A {:.4f}   B {:.4f}\n", r.ppl_a, r.ppl_b);
    fmt::print("greedy agreement   {:.2f}% ({}/{})\n", 100.0 * r.greedy_agreement, r.greedy_agree, r.tokens);
    if (args->n > 0) {
      fmt::print("generation         {} ({} greedy tokens)\n", texts_identical ? "identical" : "DIFFERENT", args->n);
      fmt::print("  A: {}\n", text_a);
      if (!texts_identical) fmt::print("  B: {}\n", text_b);
    }
  });
}

}  // namespace mlar::cli
