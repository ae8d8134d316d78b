#include "train/finetune.h"

#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "runtime/perplexity.h"
#include "train/checkpoint.h"
#include "train/objectives.h"
#include "train/token_batcher.h"
#include "train/train_model.h"
#include "util/error.h"

namespace mlar::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void check_inputs(const Model& student, const Model* teacher, const FinetuneOptions& o) {
  const ModelConfig& c = student.config;
  if (o.steps < 1) fail("--steps must be at least 1 (got {})", o.steps);
  if (o.batch < 1) fail("--batch must be at least 1 (got {})", o.batch);
  if (o.seq < 2 || o.seq > c.max_position_embeddings)
    fail("--seq {} must be in [2, {}] (the model's context)", o.seq, c.max_position_embeddings);
  if (!(o.lr > 0)) fail("--lr must be positive (got {})", o.lr);
  if (o.warmup < 0 || o.warmup > o.steps) fail("--warmup {} must be in [0, --steps {}]", o.warmup, o.steps);
  if (o.clip < 0 || o.adam.weight_decay < 0 || o.kl_weight < 0)
    fail("--clip, --weight-decay and --kl-weight must not be negative");
  if (o.mode == FinetuneMode::Layerwise) {
    if (!teacher) fail("--mode layerwise needs --teacher (the model whose attention outputs are the targets)");
    if (teacher->config.num_layers != c.num_layers || teacher->config.hidden_size != c.hidden_size)
      fail("--mode layerwise: teacher {} has {} layers of {}, the student {} of {}", teacher->source,
           teacher->config.num_layers, teacher->config.hidden_size, c.num_layers, c.hidden_size);
  }
  if (o.mode == FinetuneMode::E2E && o.kl_weight > 0 && !teacher) fail("--kl-weight needs --teacher");
  if (teacher && teacher->config.vocab_size != c.vocab_size)
    fail("teacher {} has a vocabulary of {}, the student {}", teacher->source, teacher->config.vocab_size,
         c.vocab_size);
  if (o.seq > 0 && teacher && o.seq > teacher->config.max_position_embeddings)
    fail("--seq {} exceeds the teacher's context of {}", o.seq, teacher->config.max_position_embeddings);
}

// Layerwise training changes nothing but the blocks it compares: keep the attention
// tensors (and attn_norm with --train all) and drop every other gradient.
void restrict_to_blocks(ModelWeights& g, TrainScope scope) {
  g.embed = Tensor{};
  g.final_norm = Tensor{};
  g.lm_head = Tensor{};
  for (auto& L : g.layers)
    for (auto& s : layer_tensor_slots(L))
      if (!s.attention && !(scope == TrainScope::All && s.name == "attn_norm")) *s.tensor = Tensor{};
}

}  // namespace

const char* finetune_mode_name(FinetuneMode m) { return m == FinetuneMode::Layerwise ? "layerwise" : "e2e"; }

nlohmann::json finetune_fingerprint(const FinetuneOptions& o, bool has_teacher) {
  return {{"mode", finetune_mode_name(o.mode)},
          {"train", train_scope_name(o.scope)},
          {"steps", o.steps},
          {"lr", o.lr},
          {"min_lr_ratio", o.min_lr_ratio},
          {"warmup", o.warmup},
          {"batch", o.batch},
          {"seq", o.seq},
          {"seed", o.seed},
          {"clip", o.clip},
          {"kl_weight", o.kl_weight},
          {"beta1", o.adam.beta1},
          {"beta2", o.adam.beta2},
          {"adam_eps", o.adam.eps},
          {"weight_decay", o.adam.weight_decay},
          {"teacher", has_teacher}};
}

FinetuneResult finetune(Model& student, const Model* teacher, std::span<const int32_t> train_ids,
                        std::span<const int32_t> eval_ids, const FinetuneOptions& o, const FinetuneIO& io) {
  check_inputs(student, teacher, o);
  const auto t_start = Clock::now();
  const TrainModel sm(student);
  std::optional<TrainModel> tm;
  if (teacher) tm.emplace(*teacher);
  ModelWeights grads = make_gradients(student.weights, o.scope);
  if (o.mode == FinetuneMode::Layerwise) restrict_to_blocks(grads, o.scope);
  AdamW opt(trainable_params(student.weights, grads), o.adam);
  if (opt.params().empty()) fail("{}: nothing to train with --train {}", student.source, train_scope_name(o.scope));
  TokenBatcher batcher(train_ids, o.seq, student.config.bos_token_id, o.seed);
  const LrSchedule sched{o.lr, o.min_lr_ratio, o.warmup, o.steps};
  const nlohmann::json fingerprint = finetune_fingerprint(o, teacher != nullptr);
  const bool checkpoints = !io.checkpoint_dir.empty();

  FinetuneResult res;
  if (o.resume) {
    if (!checkpoints) fail("resume: no checkpoint directory");
    const nlohmann::json st = read_checkpoint_state(io.checkpoint_dir);
    const nlohmann::json& was = st.at("options");
    for (const auto& [key, value] : fingerprint.items())
      if (!was.contains(key) || was[key] != value)
        fail("{}: the checkpoint was made with {} = {}, this run has {} (resume needs the same options)",
             io.checkpoint_dir.string(), key, was.contains(key) ? was[key].dump() : "(none)", value.dump());
    load_checkpoint_tensors(io.checkpoint_dir, st, opt);
    batcher.restore(st.at("data"));
    res.start_step = st.at("step").get<int64_t>();
    if (opt.steps() != res.start_step) fail("{}: checkpoint step {} but {} optimizer steps", io.checkpoint_dir.string(), res.start_step, opt.steps());
  }
  auto emit = [&](const nlohmann::json& j) {
    if (io.log) io.log(j);
  };
  if (!o.quiet)
    fmt::print(stderr, "finetune: {} of {} tensors ({} values), {} updates of {} x {} tokens{}\n",
               finetune_mode_name(o.mode), opt.params().size(), param_count(opt.params()), o.steps, o.batch, o.seq,
               res.start_step > 0 ? fmt::format(", resuming after update {}", res.start_step) : "");

  const BatchShape shape{o.batch, o.seq};
  std::vector<int32_t> inputs, targets;
  res.end_step = res.start_step;
  for (int64_t step = res.start_step; step < o.steps; ++step) {
    const auto t0 = Clock::now();
    batcher.next(o.batch, inputs, targets);
    zero_gradients(grads);
    const StepLoss loss = o.mode == FinetuneMode::E2E
                              ? e2e_loss(sm, tm ? &*tm : nullptr, o.kl_weight, inputs, targets, shape, grads)
                              : layerwise_loss(sm, *tm, inputs, shape, grads);
    const double gnorm = clip_grad_norm(opt.params(), o.clip);
    const double lr = sched.at(step);
    opt.step(lr);
    const double dt = seconds_since(t0);
    const double tok_s = static_cast<double>(shape.rows()) / std::max(dt, 1e-9);
    res.losses.push_back(loss.loss);
    res.end_step = step + 1;

    nlohmann::json rec = {{"step", step + 1}, {"loss", loss.loss}, {"lr", lr},
                          {"grad_norm", gnorm}, {"tokens", shape.rows()}, {"seconds", dt}, {"tokens_per_s", tok_s}};
    if (o.mode == FinetuneMode::E2E) {
      rec["ce"] = loss.ce;
      if (tm && o.kl_weight > 0) rec["kl"] = loss.kl;
    } else {
      rec["layer_mse"] = loss.layer_mse;
      rec["layer_rel"] = loss.layer_rel;
    }
    emit(rec);
    if (!o.quiet && (o.progress_every <= 1 || (step + 1) % o.progress_every == 0 || step + 1 == o.steps ||
                     step == res.start_step)) {
      std::string extra;
      if (o.mode == FinetuneMode::E2E && tm && o.kl_weight > 0) extra = fmt::format(" (ce {:.4f} kl {:.4f})", loss.ce, loss.kl);
      fmt::print(stderr, "finetune: step {}/{} loss {:.5f}{} lr {:.3g} |g| {:.3g} {:.0f} tok/s\n", step + 1, o.steps,
                 loss.loss, extra, lr, gnorm, tok_s);
    }
    if (o.eval_every > 0 && !eval_ids.empty() && ((step + 1) % o.eval_every == 0 || step + 1 == o.steps)) {
      PerplexityOptions po;
      po.ctx = o.eval_ctx;
      po.max_tokens = o.eval_max_tokens;
      const PerplexityResult pr = perplexity(student, eval_ids, po);
      res.last_eval_ppl = pr.ppl;
      emit({{"step", step + 1}, {"eval_ppl", pr.ppl}, {"eval_tokens", pr.tokens}, {"eval_ctx", o.eval_ctx}});
      if (!o.quiet) fmt::print(stderr, "finetune: step {} eval perplexity {:.4f} ({} tokens)\n", step + 1, pr.ppl, pr.tokens);
    }
    if (o.stop_after > 0 && step + 1 == o.stop_after && step + 1 < o.steps) {
      res.stopped = true;
      break;
    }
    if (checkpoints && ((o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) || step + 1 == o.steps)) {
      nlohmann::json st = {{"step", step + 1}, {"options", fingerprint}, {"data", batcher.state()},
                           {"student", student.source}, {"teacher", teacher ? teacher->source : ""}};
      write_checkpoint(io.checkpoint_dir, st, opt);
    }
  }
  res.seconds = seconds_since(t_start);
  return res;
}

}  // namespace mlar::train
