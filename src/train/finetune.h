// The fine-tuning loop behind `mla-retrofit finetune`.
//
// Modes:
//   e2e:       next-token cross-entropy of the student on batches of the training
//              text, plus kl_weight x KL(teacher || student) on the logits when a
//              teacher is given.
//   layerwise: every attention block of the student is trained to reproduce the
//              teacher's attention output (mean squared error) on the teacher's own
//              residual stream: block l sees rmsnorm(h_l^teacher, attn_norm_l) and
//              is compared with the teacher's block output. No backprop across
//              layers; the loss is the mean over layers of each layer's MSE.
// Each update: a batch (token_batcher.h), gradients, global-norm clipping, the
// schedule's learning rate, AdamW. Checkpoints (checkpoint.h) hold the trained
// tensors, the moments, the step and the data-order state, so a resumed run makes
// exactly the updates an uninterrupted one makes.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "train/adamw.h"
#include "train/params.h"

namespace mlar::train {

enum class FinetuneMode { Layerwise, E2E };
const char* finetune_mode_name(FinetuneMode m);  // "layerwise", "e2e"

struct FinetuneOptions {
  FinetuneMode mode = FinetuneMode::E2E;
  TrainScope scope = TrainScope::Attention;  // layerwise trains attention (+ attn_norm with All)
  int64_t steps = 100;                       // updates in the whole run
  double lr = 1e-3;                          // peak learning rate
  double min_lr_ratio = 0.1;                 // cosine decays to lr * min_lr_ratio
  int64_t warmup = 0;                        // linear warmup updates
  int64_t batch = 8;                         // sequences per update
  int64_t seq = 256;                         // tokens per sequence (BOS included)
  uint64_t seed = 0;                         // data order
  double clip = 1.0;                         // global gradient norm limit; 0 = none
  double kl_weight = 0.0;                    // e2e with a teacher
  AdamWOptions adam;                         // betas, eps, weight decay
  int64_t checkpoint_every = 0;              // also at the end; 0 = only at the end
  bool resume = false;                       // continue from the checkpoint directory
  int64_t eval_every = 0;                    // perplexity on the eval ids every K updates; 0 = never
  int64_t eval_ctx = 256;
  int64_t eval_max_tokens = 0;               // 0 = all eval ids
  int64_t stop_after = 0;                    // return after this update without checkpointing
                                             // (what an interruption leaves); 0 = never
  int64_t progress_every = 10;               // stderr line every K updates
  bool quiet = false;
};

struct FinetuneIO {
  std::filesystem::path checkpoint_dir;              // empty: no checkpoints (and no resume)
  std::function<void(const nlohmann::json&)> log;    // each step / eval record
};

struct FinetuneResult {
  int64_t start_step = 0;  // updates already done when this call began (resume)
  int64_t end_step = 0;    // updates done when it returned
  bool stopped = false;    // returned at stop_after, before the last update
  std::vector<double> losses;  // loss of each update this call made
  double seconds = 0;
  double last_eval_ppl = 0;  // 0 when no evaluation ran
};

// The options that must match for a checkpoint to be resumed (everything that
// changes the sequence of updates).
nlohmann::json finetune_fingerprint(const FinetuneOptions& o, bool has_teacher);

// Trains `student` in place. `teacher` may be null for e2e without KL; layerwise
// needs one with the same layer count and hidden size. Both must share the
// vocabulary. Throws mlar::Error on inconsistent inputs or a checkpoint that does
// not match.
FinetuneResult finetune(Model& student, const Model* teacher, std::span<const int32_t> train_ids,
                        std::span<const int32_t> eval_ids, const FinetuneOptions& o, const FinetuneIO& io);

}  // namespace mlar::train
