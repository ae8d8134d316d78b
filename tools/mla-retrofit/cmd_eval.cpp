#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "runtime/perplexity.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/utf8.h"

namespace mlar::cli {

void register_eval(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string text;
    int64_t ctx = 256, max_tokens = 0, batch = 512;
    int threads = 0;
    bool json = false, quiet = false;
    std::string attn = "auto", kv_dtype = "bf16", device = "cpu";
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "eval",
      "Perplexity of a model on a text file.\n"
      "Protocol: the whole text is tokenized once, without BOS; the ids are cut into windows of CTX-1 tokens\n"
      "(the last may be shorter); BOS is prepended to each window, which runs as a fresh sequence; every token\n"
      "after BOS is scored by its negative log-likelihood given BOS and the window's earlier tokens.\n"
      "Reported: perplexity = exp(mean NLL) over all scored tokens, the number of tokens scored, and tokens/s.");
  args->model.add(cmd);
  cmd->add_option("--text", args->text, "UTF-8 text file")->required();
  cmd->add_option("--ctx", args->ctx, "window length including BOS")->check(CLI::Range(int64_t{2}, int64_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--max-tokens", args->max_tokens, "score only the first M tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", args->batch,
                  "tokens per forward call; below 16 a window runs through the decode kernel, as generation does "
                  "(1: one token a step)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "compute threads (0 = all cores)");
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->add_flag("--quiet,-q", args->quiet, "no progress on stderr");
  add_attn_option(cmd, args->attn);
  add_kv_dtype_option(cmd, args->kv_dtype);
  add_device_option(cmd, args->device);
  cmd->callback([args] {
    const DType kv_dtype = kv_dtype_of(args->kv_dtype);
    set_threads(args->threads);
    std::string text = read_utf8_file(args->text);
    Model m = args->model.load();
    const MlaEval eval = attn_eval(args->attn, m);
    if (args->ctx > m.config.max_position_embeddings)
      fail("--ctx {} exceeds the model's maximum context of {} ({})", args->ctx, m.config.max_position_embeddings,
           m.source);
    const Tokenizer& tok = require_tokenizer(m);
    std::vector<int32_t> ids = tok.encode(text);
    if (ids.empty()) fail("{}: text has no tokens", args->text);
    PerplexityOptions opts;
    opts.ctx = args->ctx;
    opts.max_tokens = args->max_tokens;
    opts.batch = args->batch;
    int64_t total = args->max_tokens > 0 ? std::min<int64_t>(args->max_tokens, ids.size()) : ids.size();
    Progress progress("eval", total, !args->quiet);
    opts.progress = [&](int64_t done, int64_t) { progress.update(done); };
    auto session = open_sequence(m, SessionOptions{.max_tokens = args->ctx, .mla_eval = eval, .kv_dtype = kv_dtype},
                                 device_of(args->device));
    PerplexityResult r = perplexity(*session, ids, opts);
    progress.finish();
    if (args->json) {
      nlohmann::json j = {{"model", m.source},
                          {"text", args->text},
                          {"ctx", args->ctx},
                          {"batch", args->batch},
                          {"perplexity", r.ppl},
                          {"mean_nll", r.mean_nll},
                          {"tokens_scored", r.tokens},
                          {"windows", r.windows},
                          {"attention", session->attention_kind()},
                          {"device", session->device()},
                          {"kv_dtype", dtype_flag_name(kv_dtype)},
                          {"seconds", r.seconds},
                          {"tokens_per_s", r.tokens_per_s}};
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("{}: perplexity {:.4f} over {} tokens ({} windows of <= {}), {:.0f} tokens/s, {} KV cache\n",
                 m.source, r.ppl, r.tokens, r.windows, args->ctx, r.tokens_per_s, dtype_flag_name(kv_dtype));
    }
  });
}

}  // namespace mlar::cli
