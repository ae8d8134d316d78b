// The fine-tuning loop on tiny random models: a seed reproduces the loss curve and
// the weights exactly; an interrupted run resumed from its checkpoint ends with
// bit-identical weights and optimizer state; the exact `repeat` conversion starts
// at zero layerwise error and zero KL to its source; training lowers the loss.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "common/test_data.h"
#include "common/typed_values.h"
#include "convert/repeat.h"
#include "io/deepseek_export.h"
#include "ops/threads.h"
#include "train/finetune.h"
#include "train/train_models.h"
#include "util/error.h"

namespace mlar::test {
namespace {

namespace fs = std::filesystem;
using train::FinetuneMode;
using train::FinetuneOptions;

// A text of 600 ids with structure to learn: a few fixed phrases in random order.
std::vector<int32_t> toy_text(int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> phrases(6);
  for (auto& p : phrases)
    for (int i = 0; i < 7; ++i) p.push_back(static_cast<int32_t>(3 + rng() % (vocab - 3)));
  std::vector<int32_t> ids;
  while (ids.size() < 600) {
    const auto& p = phrases[rng() % phrases.size()];
    ids.insert(ids.end(), p.begin(), p.end());
  }
  return ids;
}

FinetuneOptions small_options(FinetuneMode mode) {
  FinetuneOptions o;
  o.mode = mode;
  o.scope = train::TrainScope::All;
  o.steps = 7;
  o.lr = 3e-3;
  o.warmup = 2;
  o.batch = 3;
  o.seq = 12;
  o.seed = 5;
  o.clip = 0.5;
  o.adam.weight_decay = 0.01;
  o.quiet = true;
  return o;
}

std::string file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

bool same_weights(const Model& a, const Model& b) {
  auto wa = const_cast<ModelWeights&>(a.weights);
  auto wb = const_cast<ModelWeights&>(b.weights);
  auto sa = train::tensor_slots(wa), sb = train::tensor_slots(wb);
  for (size_t i = 0; i < sa.size(); ++i)
    if (f32_values(*sa[i].tensor) != f32_values(*sb[i].tensor)) return false;
  return true;
}

TEST(Finetune, SameSeedReproducesTheLossCurve) {
  const Model base = train_model({"deepseek", TrainVariant::DeepSeek, true}, 1);
  const auto ids = toy_text(base.config.vocab_size, 2);
  const auto o = small_options(FinetuneMode::E2E);
  Model a = base, b = base, c = base;
  const auto ra = train::finetune(a, nullptr, ids, {}, o, {});
  const auto rb = train::finetune(b, nullptr, ids, {}, o, {});
  ASSERT_EQ(ra.losses.size(), 7u);
  EXPECT_EQ(ra.losses, rb.losses);  // exactly
  EXPECT_TRUE(same_weights(a, b));
  auto o2 = o;
  o2.seed = 6;
  const auto rc = train::finetune(c, nullptr, ids, {}, o2, {});
  EXPECT_NE(ra.losses, rc.losses);
}

struct ResumeCase {
  const char* name;
  FinetuneMode mode;
  TrainVariant student;
  bool teacher;
};

class FinetuneResume : public ::testing::TestWithParam<ResumeCase> {};

TEST_P(FinetuneResume, InterruptedAndResumedIsBitIdentical) {
  const ResumeCase& rc = GetParam();
  const Model base = train_model(rc.student, 3);
  const Model teacher = train_model({"gqa", TrainVariant::Gqa}, 4);
  const auto ids = toy_text(base.config.vocab_size, 5);
  auto o = small_options(rc.mode);
  o.kl_weight = rc.teacher && rc.mode == FinetuneMode::E2E ? 0.5 : 0.0;
  o.checkpoint_every = 3;
  const Model* t = rc.teacher ? &teacher : nullptr;
  const fs::path dir = temp_dir(std::string("resume_") + rc.name);

  // Uninterrupted.
  Model full = base;
  train::FinetuneIO io_full;
  io_full.checkpoint_dir = dir / "full";
  const auto r_full = train::finetune(full, t, ids, {}, o, io_full);
  EXPECT_FALSE(r_full.stopped);
  EXPECT_EQ(r_full.end_step, 7);

  // Interrupted after update 5 (last checkpoint: update 3), then resumed by a new
  // process: the model is loaded afresh and the checkpoint restores the rest.
  train::FinetuneIO io;
  io.checkpoint_dir = dir / "cut";
  Model cut = base;
  auto o_cut = o;
  o_cut.stop_after = 5;
  const auto r_cut = train::finetune(cut, t, ids, {}, o_cut, io);
  EXPECT_TRUE(r_cut.stopped);
  EXPECT_EQ(r_cut.end_step, 5);
  Model resumed = base;
  auto o_res = o;
  o_res.resume = true;
  const auto r_res = train::finetune(resumed, t, ids, {}, o_res, io);
  EXPECT_EQ(r_res.start_step, 3);
  EXPECT_EQ(r_res.end_step, 7);
  ASSERT_EQ(r_res.losses.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r_res.losses[i], r_full.losses[3 + i]) << "update " << 4 + i;
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(r_cut.losses[3 + i], r_full.losses[3 + i]);
  EXPECT_TRUE(same_weights(full, resumed));
  // The final checkpoints (weights and moments) are byte-identical too.
  EXPECT_EQ(file_bytes(dir / "full" / "tensors.safetensors"), file_bytes(dir / "cut" / "tensors.safetensors"));
  EXPECT_FALSE(same_weights(base, resumed));
}

INSTANTIATE_TEST_SUITE_P(
    Modes, FinetuneResume,
    ::testing::Values(ResumeCase{"e2e_mla_kl", FinetuneMode::E2E, {"ds", TrainVariant::DeepSeek, true}, true},
                      ResumeCase{"e2e_gqa", FinetuneMode::E2E, {"gqa", TrainVariant::Gqa, false, true}, false},
                      ResumeCase{"layerwise_repeat", FinetuneMode::Layerwise, {"rep", TrainVariant::Repeat}, true}),
    [](const auto& info) { return std::string(info.param.name); });

// Work is split into blocks of fixed size, so the thread count changes no rounding.
TEST(Finetune, ThreadCountDoesNotChangeTheResult) {
  const Model base = train_model({"ds", TrainVariant::DeepSeek, true}, 14);
  const Model teacher = train_model({"gqa", TrainVariant::Gqa}, 15);
  const auto ids = toy_text(base.config.vocab_size, 16);
  auto o = small_options(FinetuneMode::E2E);
  o.batch = 4;
  o.seq = 48;  // 192 rows: several blocks of every op
  o.steps = 3;
  o.warmup = 0;
  o.kl_weight = 0.3;
  const int threads = ops::cpu_threads();
  std::vector<Model> runs;
  for (int t : {1, 3}) {
    ops::set_cpu_threads(t);
    runs.push_back(base);
    train::finetune(runs.back(), &teacher, ids, {}, o, {});
  }
  ops::set_cpu_threads(threads);
  EXPECT_TRUE(same_weights(runs[0], runs[1]));
  EXPECT_FALSE(same_weights(runs[0], base));
}

TEST(Finetune, ResumeRefusesOtherOptions) {
  const Model base = train_model({"gqa", TrainVariant::Gqa}, 3);
  const auto ids = toy_text(base.config.vocab_size, 5);
  auto o = small_options(FinetuneMode::E2E);
  o.steps = 2;
  train::FinetuneIO io;
  io.checkpoint_dir = temp_dir("resume_refuse");
  Model m = base;
  train::finetune(m, nullptr, ids, {}, o, io);
  o.resume = true;
  o.lr *= 2;
  Model m2 = base;
  try {
    train::finetune(m2, nullptr, ids, {}, o, io);
    FAIL() << "resumed with another learning rate";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lr"), std::string::npos) << e.what();
  }
}

// The exact repeat retrofit computes the source's function: its layerwise error and
// its KL to the source start at zero (up to float rounding), through the training
// forward of both attention types.
TEST(Finetune, RepeatConversionStartsExact) {
  const Model gqa = train_model({"gqa", TrainVariant::Gqa, true}, 9);
  const Model mla = convert_repeat(gqa);
  const auto ids = toy_text(gqa.config.vocab_size, 10);
  auto o = small_options(FinetuneMode::Layerwise);
  o.steps = 1;
  o.warmup = 0;
  Model s1 = mla;
  const auto rl = train::finetune(s1, &gqa, ids, {}, o, {});
  EXPECT_LT(rl.losses[0], 1e-10);
  o.mode = FinetuneMode::E2E;
  o.kl_weight = 1.0;
  Model s2 = mla, g2 = gqa;
  const auto re = train::finetune(s2, &gqa, ids, {}, o, {});
  o.kl_weight = 0.0;
  const auto rg = train::finetune(g2, nullptr, ids, {}, o, {});
  EXPECT_NEAR(re.losses[0], rg.losses[0], 1e-5);  // CE equal, KL ~ 0
}

// A DeepSeek-V3 export rescales the residual stream (eps 1e-5 -> 1e-6, stream x
// sqrt(0.1)); layerwise training of the export against the GQA teacher must see the
// same losses as training the model before export (the GPU trainer's cross-check
// runs the C++ trainer on the export).
TEST(Finetune, LayerwiseOnAnExportWithRescaledStreamMatches) {
  const Model gqa = train_model({"gqa", TrainVariant::Gqa}, 21);
  const Model student = train_model({"ds", TrainVariant::DeepSeek}, 22);
  ASSERT_EQ(student.config.rms_norm_eps, 1e-5);
  const Model exported = deepseek_layout(student, DeepseekFormat::HfDeepseekV3);
  ASSERT_EQ(exported.config.rms_norm_eps, 1e-6);
  const auto ids = toy_text(gqa.config.vocab_size, 23);
  for (auto mode : {FinetuneMode::Layerwise, FinetuneMode::E2E}) {
    auto o = small_options(mode);
    o.steps = 1;
    o.warmup = 0;
    o.kl_weight = 1.0;
    Model a = student, b = exported;
    const double la = train::finetune(a, &gqa, ids, {}, o, {}).losses[0];
    const double lb = train::finetune(b, &gqa, ids, {}, o, {}).losses[0];
    EXPECT_GT(la, 1e-4);
    EXPECT_NEAR(lb, la, 1e-5 * la) << train::finetune_mode_name(mode);
  }
}

TEST(Finetune, TrainingLowersTheLoss) {
  const Model gqa = train_model({"gqa", TrainVariant::Gqa}, 11);
  const Model student = train_model({"ds", TrainVariant::DeepSeek}, 12);
  const auto ids = toy_text(gqa.config.vocab_size, 13);
  auto o = small_options(FinetuneMode::E2E);
  o.steps = 40;
  o.lr = 1e-2;
  Model s = student;
  const auto r = train::finetune(s, nullptr, ids, {}, o, {});
  EXPECT_LT(r.losses.back(), 0.5 * r.losses.front());
  o.mode = FinetuneMode::Layerwise;
  o.scope = train::TrainScope::Attention;
  Model s2 = student;
  const auto rl = train::finetune(s2, &gqa, ids, {}, o, {});
  EXPECT_LT(rl.losses.back(), 0.5 * rl.losses.front());
  // Layerwise changes nothing outside the attention blocks.
  auto w0 = const_cast<ModelWeights&>(student.weights);
  auto slots0 = train::tensor_slots(w0), slots1 = train::tensor_slots(s2.weights);
  for (size_t i = 0; i < slots0.size(); ++i)
    if (!slots0[i].attention) {
      EXPECT_EQ(f32_values(*slots0[i].tensor), f32_values(*slots1[i].tensor)) << slots0[i].name;
    }
}

TEST(Finetune, LayerwiseNeedsATeacher) {
  Model m = train_model({"gqa", TrainVariant::Gqa}, 1);
  const auto ids = toy_text(m.config.vocab_size, 1);
  EXPECT_THROW(train::finetune(m, nullptr, ids, {}, small_options(FinetuneMode::Layerwise), {}), Error);
}

}  // namespace
}  // namespace mlar::test
