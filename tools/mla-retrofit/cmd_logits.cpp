#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "io/npy.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace mlar::cli {

void register_logits(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::vector<int32_t> ids;
    std::string prompt, out;
    std::string kv_dtype = "bf16", device = "cpu";
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "logits",
      "Run a model on a token sequence and write every position's logits as a float32 .npy [n, vocab]\n"
      "(for checks against other implementations, e.g. tools/interop).");
  args->model.add(cmd);
  auto* ids = cmd->add_option("--ids", args->ids, "token ids, given as they are (no BOS added)")->delimiter(',');
  cmd->add_option("--prompt", args->prompt, "text to tokenize instead (BOS is prepended)")->excludes(ids);
  cmd->add_option("--out", args->out, "output .npy file")->required();
  cmd->add_flag("--force", args->force, "replace an existing output");
  add_kv_dtype_option(cmd, args->kv_dtype);
  add_device_option(cmd, args->device);
  cmd->callback([args] {
    check_output_free(args->out, args->force);
    Model m = args->model.load();
    std::vector<int32_t> tokens = args->ids;
    if (tokens.empty()) {
      const Tokenizer& tok = require_tokenizer(m);
      tokens.push_back(tok.bos_id());
      for (int32_t t : tok.encode(args->prompt)) tokens.push_back(t);
    }
    if (tokens.empty()) fail("logits: give --ids or --prompt");
    const auto s = open_sequence(
        m, SessionOptions{.max_tokens = static_cast<int64_t>(tokens.size()), .kv_dtype = kv_dtype_of(args->kv_dtype)},
        device_of(args->device));
    const Tensor& l = s->forward(tokens, Logits::All);
    write_npy(args->out, l, args->force);
    fmt::print(stderr, "wrote {} ({} x {})\n", args->out, l.shape[0], l.shape[1]);
  });
}

}  // namespace mlar::cli
