#include "common/hf_fixtures.h"

#include <filesystem>

#include "common/test_data.h"
#include "io/hf_model.h"
#include "runtime/random_model.h"
#include "util/error.h"

namespace mlar::test {

ModelConfig family_config(const std::string& family) {
  ModelConfig c;
  c.arch = family;
  c.vocab_size = 96;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.rope_layout = RopeLayout::Half;
  c.max_position_embeddings = 256;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  if (family == "llama") {
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;  // explicit: 4 x 16 != 48
    c.rope_theta = 500000;
    c.rope_scaling.type = RopeScaling::Type::Llama3;
    c.rope_scaling.factor = 8;
    c.rope_scaling.low_freq_factor = 1;
    c.rope_scaling.high_freq_factor = 4;
    c.rope_scaling.original_max_position = 64;
  } else if (family == "qwen2") {
    c.attention_bias = true;
    c.tie_word_embeddings = true;
    c.rope_theta = 1000000;
  } else if (family == "qwen3") {
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;  // explicit: 4 x 16 != 48
    c.qk_norm = true;
    c.tie_word_embeddings = true;
    c.rope_theta = 1000000;
  } else if (family == "mistral") {
    c.num_kv_heads = 3;
    c.sliding_window = 4096;
  } else {
    fail("unknown fixture family {}", family);
  }
  return c;
}

std::string write_family_fixture(const std::string& family, uint64_t seed) {
  Model m = random_model(family_config(family), seed);
  const std::string dir = temp_dir("fixture-" + family) + "/" + family;
  std::filesystem::create_directory(dir);
  write_hf_model(m, dir);
  return dir;
}

}  // namespace mlar::test
