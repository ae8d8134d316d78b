// Inputs the fuzz targets (fuzz/) found or that review of them showed: each gave a
// crash, a sanitizer report or an absurd allocation before its fix, and must give
// one mlar::Error line now.
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "helpers.h"
#include "io/deepseek_read.h"
#include "convert/repeat.h"
#include "io/hf_model.h"
#include "io/mla_model.h"
#include "io/safetensors.h"
#include "model/mla.h"
#include "util/json_depth.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace mlar;
using namespace mlar::test;

namespace {

std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string write_file(const std::string& tag, const std::string& name, const std::string& bytes) {
  const std::string path = (fs::path(temp_dir(tag)) / name).string();
  write_bytes(path, bytes);
  return path;
}

json tiny_llama() {
  return {{"model_type", "llama"},  {"hidden_size", 64},        {"intermediate_size", 128},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"vocab_size", 100}};
}

json tiny_mla() {
  return {{"kv_lora_rank", 8}, {"qk_nope_head_dim", 4}, {"qk_rope_head_dim", 4}, {"v_head_dim", 4},
          {"softmax_scale", 0.5}};
}

}  // namespace

TEST(JsonDepth, CountsBracketsOutsideStrings) {
  EXPECT_EQ(json_nesting_depth(R"({"a": [1, {"b": []}]})"), 4u);
  EXPECT_EQ(json_nesting_depth(R"({"[[[[": "{{\"[["})"), 1u);
  EXPECT_EQ(json_nesting_depth("]]]["), 1u);
  EXPECT_EQ(json_nesting_depth(""), 0u);
}

// A shape of 200000 nested arrays: the error message dumped it recursively and
// overflowed the stack (ASan stack-overflow in nlohmann's serializer).
TEST(FuzzRegression, SafetensorsHeaderNestedTooDeep) {
  const std::string header = R"({"t":{"dtype":"F32","shape":)" + nested(200000) + R"(,"data_offsets":[0,0]}})";
  const std::string path = write_file("fuzz-st-deep", "t.safetensors", safetensors_bytes(header, ""));
  const std::string msg = error_of([&] { SafetensorsFile f(path); });
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_HAS(msg, "nested deeper than 512 levels");
  // Brackets inside strings are not nesting.
  const std::string name(1000, '[');
  const std::string ok = R"({")" + name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  SafetensorsFile f(write_file("fuzz-st-name", "t.safetensors", safetensors_bytes(ok, f32_bytes({1}))));
  EXPECT_NE(f.find(name), nullptr);
}

// The same through config.json: "rope_scaling" dumped in its error message.
TEST(FuzzRegression, ConfigNestedTooDeep) {
  std::string text = tiny_llama().dump();
  text.insert(text.size() - 1, R"(,"rope_scaling":)" + nested(200000));
  const std::string path = write_file("fuzz-cfg-deep", "config.json", text);
  const std::string msg = error_of([&] { read_hf_config(path); });
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_HAS(msg, "nested deeper than 512 levels");
}

// head_dim 2^62 made num_attention_heads * head_dim overflow (UBSan) in q_dim(), which
// read_hf_model computes; 2^40 layers made it allocate the layers up front.
TEST(FuzzRegression, ConfigSizesAreBounded) {
  json j = tiny_llama();
  j["head_dim"] = int64_t{1} << 62;
  EXPECT_HAS(error_of([&] { parse_hf_config(j, "config.json"); }), "head_dim = 4611686018427387904 is out of range");
  j = tiny_llama();
  j["num_hidden_layers"] = int64_t{1} << 40;
  EXPECT_HAS(error_of([&] { parse_hf_config(j, "config.json"); }), "num_hidden_layers = 1099511627776 is out of range");
  j = tiny_llama();
  j["num_hidden_layers"] = int64_t{1} << 30;  // the largest accepted
  EXPECT_EQ(parse_hf_config(j, "config.json").num_layers, int64_t{1} << 30);
}

// A config.json claiming 2^30 layers beside a 2-layer model: read_hf_model sized
// the layer vector first (about 1.3 TB); now it stops at the first missing tensor.
TEST(FuzzRegression, HfModelLayerCountBeyondTheTensors) {
  Model m = random_model(small_config(), 3);
  const fs::path dir = temp_dir("fuzz-hf-layers");
  write_hf_llama(m, dir);
  json cj;
  {
    std::ifstream f(dir / "config.json");
    cj = json::parse(f);
  }
  cj["num_hidden_layers"] = int64_t{1} << 30;
  std::ofstream(dir / "config.json") << cj.dump();
  EXPECT_HAS(error_of([&] { read_hf_model(dir.string()); }),
             dir.string() + ": missing tensor model.layers.2.input_layernorm.weight");
}

// The same two for this project's MLA directories (read_mla_model): a config.json
// claiming 2^30 layers stops at the first missing tensor, and a deeply nested one
// is refused before parsing (nlohmann recursed once per level).
TEST(FuzzRegression, MlaDirLayerCountAndNesting) {
  const fs::path dir = temp_dir("fuzz-mla-layers");
  write_mla_model(convert_repeat(random_model(small_config(), 3)), dir);
  json cj;
  {
    std::ifstream f(dir / "config.json");
    cj = json::parse(f);
  }
  cj["num_hidden_layers"] = int64_t{1} << 30;
  std::ofstream(dir / "config.json") << cj.dump();
  EXPECT_HAS(error_of([&] { read_mla_model(dir.string()); }),
             dir.string() + ": missing tensor model.layers.2.input_layernorm.weight");
  std::ofstream(dir / "config.json") << "{\"a\": " << nested(100000) << "}";
  EXPECT_HAS(error_of([&] { read_mla_model(dir.string()); }), "nested deeper than");
}

// A qwen2 config.json with head_dim 4 != hidden_size / heads (8): the reader takes
// it, but hf_config_json dropped head_dim for qwen2, so the written config (also the
// base of an MLA directory's) read back with head size 8. Found by the round-trip
// check of the hf_config fuzz target.
TEST(FuzzRegression, Qwen2ExplicitHeadDimSurvivesTheWriter) {
  json j = tiny_llama();
  j["model_type"] = "qwen2";
  j["hidden_size"] = 32;
  j["num_attention_heads"] = 4;
  j["head_dim"] = 4;
  j["bos_token_id"] = 1;  // Qwen2's default ids lie outside this small vocabulary
  j["eos_token_id"] = 2;
  const ModelConfig c = parse_hf_config(j, "config.json");
  ASSERT_EQ(c.head_dim, 4);
  const json written = hf_config_json(c);
  EXPECT_EQ(written.at("head_dim"), 4);
  EXPECT_EQ(parse_hf_config(written, "written").head_dim, 4);
  // The usual case writes no head_dim, as Qwen2Config does.
  j["head_dim"] = 8;
  EXPECT_FALSE(hf_config_json(parse_hf_config(j, "config.json")).contains("head_dim"));
}

// A DeepSeek-V3 config.json whose rope_scaling has a valid rope_type but a numeric
// legacy "type" beside mscale_all_dim: the YaRN factor read "type" with json::value(),
// and nlohmann::type_error escaped read_deepseek_v3_model (review finding).
TEST(FuzzRegression, DeepseekV3RopeScalingWithNumericType) {
  const json cfg = {{"model_type", "deepseek_v3"}, {"num_hidden_layers", 1}, {"first_k_dense_replace", 1},
                    {"num_attention_heads", 2},     {"kv_lora_rank", 4},      {"q_lora_rank", 0},
                    {"qk_nope_head_dim", 2},        {"qk_rope_head_dim", 2},  {"v_head_dim", 2},
                    {"vocab_size", 8},              {"hidden_size", 8},       {"intermediate_size", 8},
                    {"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}, {"type", 5}, {"mscale_all_dim", 1}}}};
  const fs::path dir = temp_dir("fuzz-ds3-rope");
  std::ofstream(dir / "config.json") << cfg.dump();
  ASSERT_TRUE(is_deepseek_v3_dir(dir.string()));
  // Past the config, the directory has no weights: that is the error now.
  EXPECT_HAS(error_of([&] { read_deepseek_v3_model(dir.string()); }), "model.safetensors");
}

// The "mla" section: values of the wrong type escaped as nlohmann::type_error, and
// sizes were unbounded (products overflowed in the tensor shapes).
TEST(FuzzRegression, MlaSectionTypesAndSizes) {
  auto mla_error = [](const json& m) { return error_of([&] { mla_config_from_json(m, "config.json"); }); };
  json m = tiny_mla();
  EXPECT_NO_THROW(mla_config_from_json(m, "config.json"));
  m["rope_mode"] = 1;
  EXPECT_HAS(mla_error(m), "config.json: mla.rope_mode must be a string");
  m = tiny_mla();
  m["latent_norm"] = 3;
  EXPECT_HAS(mla_error(m), "config.json: mla.latent_norm must be true or false");
  m = tiny_mla();
  m["absorbed"] = "yes";
  EXPECT_HAS(mla_error(m), "mla.absorbed must be true or false");
  m = tiny_mla();
  m["kv_lora_rank"] = int64_t{1} << 40;
  EXPECT_HAS(mla_error(m), "mla.kv_lora_rank = 1099511627776 is out of range");
  m = tiny_mla();
  m["num_rope_heads"] = 1 << 20;
  m["qk_rope_head_dim"] = 1 << 12;
  EXPECT_HAS(mla_error(m), "mla.num_rope_heads * mla.qk_rope_head_dim = 4294967296 is out of range");
  m = tiny_mla();
  m["layer_kv_lora_rank"] = {8, int64_t{1} << 40};
  EXPECT_HAS(mla_error(m), "mla.layer_kv_lora_rank must hold positive integers");
}
