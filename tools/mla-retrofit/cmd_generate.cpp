#include <cstdio>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "runtime/generate.h"
#include "util/utf8.h"

namespace mlar::cli {
namespace {

// Length of the longest prefix of `s` that does not end inside a UTF-8 sequence.
size_t complete_utf8_prefix(const std::string& s) {
  size_t end = s.size();
  for (size_t back = 1; back <= 4 && back <= s.size(); ++back) {
    unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xc0) == 0x80) continue;        // continuation byte: keep looking for the lead
    if (utf8_len(c) > back) end = s.size() - back;  // lead byte whose sequence is cut short
    break;
  }
  return end;
}

}  // namespace

void register_generate(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string prompt;
    int64_t n = 128;
    float temperature = 0.8f, top_p = 0.9f;
    uint64_t seed = 0;
    int threads = 0;
    bool json = false;
    std::string attn = "auto", kv_dtype = "bf16", device = "cpu";
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt, streaming it to stdout.");
  args->model.add(cmd);
  cmd->add_option("--prompt,-p", args->prompt, "prompt text (BOS is prepended)")->required();
  cmd->add_option("-n,--tokens", args->n, "tokens to generate at most")->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature,-t", args->temperature, "sampling temperature; 0 = greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--top-p", args->top_p, "nucleus sampling mass in (0, 1]")->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "random seed (same seed, same text)")->capture_default_str();
  cmd->add_option("--threads", args->threads, "compute threads (0 = all cores)");
  cmd->add_flag("--json", args->json, "print the text and speed as JSON instead of streaming");
  add_attn_option(cmd, args->attn);
  add_kv_dtype_option(cmd, args->kv_dtype);
  add_device_option(cmd, args->device);
  cmd->callback([args] {
    set_threads(args->threads);
    Model m = args->model.load();
    const MlaEval eval = attn_eval(args->attn, m);
    const DType kv_dtype = kv_dtype_of(args->kv_dtype);
    const Tokenizer& tok = require_tokenizer(m);
    std::vector<int32_t> ids{tok.bos_id()};
    auto body = tok.encode(args->prompt);
    ids.insert(ids.end(), body.begin(), body.end());
    const size_t n_prompt = ids.size();

    GenerateOptions opts;
    opts.max_new_tokens = args->n;
    opts.sampling = SamplerOptions{args->temperature, args->top_p, args->seed};
    opts.sample_vocab = tok.vocab_size();  // ids past the tokenizer (padding rows) cannot be printed
    size_t printed = 0;
    auto flush = [&](bool final) {
      std::string text = tok.decode(ids);
      size_t end = final ? text.size() : complete_utf8_prefix(text);
      if (end > printed && !args->json) {
        std::fwrite(text.data() + printed, 1, end - printed, stdout);
        std::fflush(stdout);
      }
      printed = std::max(printed, end);
      return text;
    };
    if (!args->json) flush(false);
    auto session = open_sequence(
        m, SessionOptions{.max_tokens = opts.max_tokens, .mla_eval = eval, .kv_dtype = kv_dtype},
        device_of(args->device));
    GenerateStats st = generate(*session, std::span<const int32_t>(ids.data(), n_prompt), opts, [&](int32_t t) {
      ids.push_back(t);
      if (!args->json) flush(false);
      return true;
    });
    std::string text = flush(true);
    if (args->json) {
      nlohmann::json j = {{"text", text},
                          {"prompt_tokens", st.prompt_tokens},
                          {"generated_tokens", st.generated_tokens},
                          {"ids", ids},
                          {"prefill_tokens_per_s", st.prefill_tok_s},
                          {"decode_tokens_per_s", st.decode_tok_s},
                          {"attention", session->attention_kind()},
                          {"device", session->device()},
                          {"kv_dtype", dtype_flag_name(kv_dtype)},
                          {"kv_cache_bytes_per_token", session->kv_bytes_per_token()},
                          {"stop", stop_reason_name(st.stop)}};
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("\n");
      fmt::print(stderr, "[{} prompt tokens, {} generated; prefill {:.1f} tok/s, decode {:.1f} tok/s; stop: {}]\n",
                 st.prompt_tokens, st.generated_tokens, st.prefill_tok_s, st.decode_tok_s, stop_reason_name(st.stop));
    }
  });
}

}  // namespace mlar::cli
