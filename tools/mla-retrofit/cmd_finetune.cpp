#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "io/hf_model.h"
#include "io/mla_model.h"
#include "train/checkpoint.h"
#include "train/train_model.h"
#include "train/finetune.h"
#include "util/atomic_output.h"
#include "util/error.h"
#include "util/utf8.h"

namespace fs = std::filesystem;

namespace mlar::cli {
namespace {

// The provenance an MLA directory records (kept when a fine-tuned model is written).
nlohmann::json converted_from_of(const std::string& path) {
  std::ifstream f(fs::path(path) / "config.json");
  if (!f) return nullptr;
  try {
    const auto j = nlohmann::json::parse(f);
    if (j.contains("mla_retrofit") && j["mla_retrofit"].contains("converted_from"))
      return j["mla_retrofit"]["converted_from"];
  } catch (const nlohmann::json::exception&) {
  }
  return nullptr;
}

// Keeps only the records of updates <= step (a resumed run redoes the later ones).
void truncate_log(const fs::path& log, int64_t step) {
  std::ifstream in(log);
  if (!in) return;
  std::ostringstream kept;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t{0}) > step) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a line cut short by the interruption
    }
    kept << line << '\n';
  }
  in.close();
  AtomicFile out(log, true);
  write_text_file(out.tmp_path(), kept.str());
  out.commit();
}

// Writes the model into `dir` (which also holds the checkpoint and the log): the
// files are written into a temporary sibling directory inside `dir`, then renamed
// into place one by one, config.json last (its presence marks a complete model).
void write_final_model(const Model& m, const fs::path& dir, const nlohmann::json& converted_from) {
  AtomicDir stage(dir / "final-model", true);
  if (m.config.mla) {
    MlaWriteOptions wo;
    wo.converted_from = converted_from;
    write_mla_model(m, stage.tmp_path(), wo);
  } else {
    write_hf_model(m, stage.tmp_path());
  }
  std::error_code ec;
  fs::remove(dir / "config.json", ec);
  for (const auto& e : fs::directory_iterator(dir)) {  // weights of an earlier final write
    const std::string name = e.path().filename().string();
    if (name.starts_with("model") && (name.ends_with(".safetensors") || name.ends_with(".index.json")))
      fs::remove(e.path(), ec);
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(stage.tmp_path())) files.push_back(e.path());
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    const bool ca = a.filename() == "config.json", cb = b.filename() == "config.json";
    return ca != cb ? cb : a < b;
  });
  for (const auto& f : files) {
    fs::rename(f, dir / f.filename(), ec);
    if (ec) fail("{}: cannot move {} into place: {}", dir.string(), f.string(), ec.message());
  }
}

}  // namespace

void register_finetune(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string text, out, teacher, mode = "e2e", train = "attn", log, eval_text;
    int64_t steps = 0, batch = 8, seq = 256, warmup = 0, checkpoint_every = 0, eval_every = 0, eval_ctx = 256,
            eval_tokens = 0, stop_after = 0, progress_every = 10;
    double lr = 0, weight_decay = 0.0, clip = 1.0, kl_weight = 0.0, min_lr_ratio = 0.1;
    uint64_t seed = 0;
    int threads = 0;
    bool resume = false, force = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "finetune",
      "Fine-tune a model (typically an MLA conversion) on a text file and write it to DIR in its own format\n"
      "(the MLA format for MLA models, an HF directory for GQA models).\n"
      "--mode e2e: next-token cross-entropy on sequences [BOS, t_s .. t_{s+L-2}] predicting t_s .. t_{s+L-1}\n"
      "(the eval protocol's layout), plus --kl-weight x KL(teacher || student) on the logits with --teacher.\n"
      "--mode layerwise: each attention block learns to reproduce the teacher's attention output (MSE) on the\n"
      "teacher's own residual stream; no backprop across layers. --train attn trains the attention tensors\n"
      "(the converted part), all every tensor (layerwise: attention and its input norm).\n"
      "AdamW (betas 0.9/0.95, decoupled weight decay on matrices only), linear warmup then cosine decay to\n"
      "--min-lr-ratio x LR, global-norm clipping. Data order: a std::mt19937_64 seeded by --seed shuffles\n"
      "windows of L tokens each epoch. DIR/checkpoint holds weights, moments, step and data state (written\n"
      "atomically); --resume continues from it and makes exactly the updates an uninterrupted run makes.\n"
      "Records go to a JSON-lines log (--log, default DIR/train_log.jsonl).");
  args->model.add(cmd);
  cmd->add_option("--text", args->text, "training text (UTF-8)")->required();
  cmd->add_option("--out", args->out, "output directory (must not exist unless --force or --resume)")->required();
  cmd->add_option("--teacher", args->teacher, "teacher model (layerwise targets, KL) e.g. the GQA source");
  cmd->add_option("--mode", args->mode, "layerwise | e2e")->check(CLI::IsMember({"layerwise", "e2e"}))
      ->capture_default_str();
  cmd->add_option("--train", args->train, "attn | all")->check(CLI::IsMember({"attn", "all"}))->capture_default_str();
  cmd->add_option("--steps", args->steps, "updates")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--lr", args->lr, "peak learning rate")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", args->batch, "sequences per update")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--seq", args->seq, "tokens per sequence (BOS included)")->check(CLI::Range(int64_t{2}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "data-order seed")->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "linear warmup updates")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--min-lr-ratio", args->min_lr_ratio, "cosine decays to LR x this")->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--weight-decay", args->weight_decay, "decoupled weight decay")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--clip", args->clip, "global gradient-norm limit (0 = none)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--kl-weight", args->kl_weight, "e2e: weight of KL(teacher || student)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--checkpoint-every", args->checkpoint_every, "checkpoint every K updates (always at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--resume", args->resume, "continue from DIR/checkpoint");
  cmd->add_option("--log", args->log, "JSON-lines log (default DIR/train_log.jsonl)");
  cmd->add_option("--eval-text", args->eval_text, "evaluation text (perplexity during training)");
  cmd->add_option("--eval-every", args->eval_every, "evaluate every K updates (and at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-ctx", args->eval_ctx, "evaluation window (as eval --ctx)")->check(CLI::Range(int64_t{2}, int64_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--eval-tokens", args->eval_tokens, "evaluate on the first M tokens only (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop-after", args->stop_after,
                  "stop after update K without checkpointing or writing the model, as an interruption would "
                  "(for testing --resume)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--progress-every", args->progress_every, "progress line every K updates")->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "compute threads (0 = all cores)");
  cmd->add_flag("--force", args->force, "replace an existing output directory");
  cmd->add_flag("--quiet,-q", args->quiet, "no progress on stderr");
  cmd->callback([args] {
    set_threads(args->threads);
    const fs::path out(args->out), ckpt = fs::path(args->out) / "checkpoint";
    if (args->resume) {
      if (!fs::is_directory(ckpt)) fail("{}: no checkpoint to resume from", ckpt.string());
    } else {
      check_output_free(out, args->force);
    }
    if (!args->eval_text.empty() && args->eval_every == 0) fail("--eval-text needs --eval-every K");
    if (args->eval_every > 0 && args->eval_text.empty()) fail("--eval-every needs --eval-text FILE");

    Model student = args->model.load();
    std::unique_ptr<Model> teacher;
    if (!args->teacher.empty()) teacher = std::make_unique<Model>(load_model(args->teacher));
    // The CPU trainer computes on float32 weights (a BF16 checkpoint is widened once).
    materialize_f32(student.weights);
    // A model the trainer cannot train (e.g. score scales) is refused before anything else,
    // and before the output directory is touched.
    { const train::TrainModel trainable(student); }
    if (teacher) materialize_f32(teacher->weights);
    const Tokenizer& tok = require_tokenizer(student);
    const std::vector<int32_t> train_ids = tok.encode(read_utf8_file(args->text));
    std::vector<int32_t> eval_ids;
    if (!args->eval_text.empty()) eval_ids = tok.encode(read_utf8_file(args->eval_text));

    train::FinetuneOptions o;
    o.mode = args->mode == "layerwise" ? train::FinetuneMode::Layerwise : train::FinetuneMode::E2E;
    o.scope = args->train == "all" ? train::TrainScope::All : train::TrainScope::Attention;
    o.steps = args->steps;
    o.lr = args->lr;
    o.min_lr_ratio = args->min_lr_ratio;
    o.warmup = args->warmup;
    o.batch = args->batch;
    o.seq = args->seq;
    o.seed = args->seed;
    o.clip = args->clip;
    o.kl_weight = args->kl_weight;
    o.adam.weight_decay = args->weight_decay;
    o.checkpoint_every = args->checkpoint_every;
    o.resume = args->resume;
    o.eval_every = args->eval_every;
    o.eval_ctx = args->eval_ctx;
    o.eval_max_tokens = args->eval_tokens;
    o.stop_after = args->stop_after;
    o.progress_every = args->progress_every;
    o.quiet = args->quiet;

    if (!args->resume) {
      if (fs::exists(out)) fs::remove_all(out);  // --force (checked above)
      fs::create_directories(out);
    }
    const fs::path log_path = args->log.empty() ? out / "train_log.jsonl" : fs::path(args->log);
    if (args->resume) {
      truncate_log(log_path, train::read_checkpoint_step(ckpt));
    } else {
      std::ofstream(log_path, std::ios::trunc);
    }
    std::ofstream log(log_path, std::ios::app);
    if (!log) fail("{}: cannot open the log for writing", log_path.string());

    train::FinetuneIO io;
    io.checkpoint_dir = ckpt;
    io.log = [&log](const nlohmann::json& j) { log << j.dump() << '\n' << std::flush; };
    const train::FinetuneResult r = train::finetune(student, teacher.get(), train_ids, eval_ids, o, io);
    if (r.stopped) {
      fmt::print("stopped after update {} (--stop-after); continue with --resume from {}\n", r.end_step,
                 ckpt.string());
      return;
    }
    write_final_model(student, out, converted_from_of(args->model.path));
    nlohmann::json summary = {{"model", args->model.path},
                              {"teacher", args->teacher},
                              {"text", args->text},
                              {"options", train::finetune_fingerprint(o, teacher != nullptr)},
                              {"train_tokens", train_ids.size()},
                              {"updates", r.end_step},
                              {"final_loss", r.losses.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.losses.back())}};
    if (r.last_eval_ppl > 0) summary["eval_ppl"] = r.last_eval_ppl;
    AtomicFile sf(out / "finetune.json", true);
    write_text_file(sf.tmp_path(), summary.dump(2) + "\n");
    sf.commit();
    fmt::print("wrote {} ({} updates{}, {:.1f} s)\n", args->out, r.end_step,
               r.losses.empty() ? std::string() : fmt::format(", last loss {:.5f}", r.losses.back()), r.seconds);
  });
}

}  // namespace mlar::cli
