// Model directories: model.safetensors or shards + model.safetensors.index.json.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "helpers.h"
#include "io/safetensors_store.h"
#include "io/safetensors_writer.h"

namespace fs = std::filesystem;
using namespace mlar;
using namespace mlar::test;

namespace {

struct Fixture {
  std::vector<Tensor> ts;
  std::vector<TypedTensor> typed;  // the same, as the writer takes them
  std::vector<NamedTensor> named;
  Fixture() {
    // 6 tensors of 40..240 bytes as F32.
    for (int i = 0; i < 6; ++i) ts.push_back(random_tensor({i + 1, 10}, 100 + i));
    typed.assign(ts.begin(), ts.end());
    for (int i = 0; i < 6; ++i) named.push_back({fmt::format("t{}", i), &typed[i]});
  }
};

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

void write_index(const fs::path& dir, const nlohmann::json& weight_map) {
  std::ofstream f(dir / "model.safetensors.index.json");
  f << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump();
}

}  // namespace

TEST(SafetensorsStore, SingleFileWhenUnderTheLimit) {
  Fixture fx;
  const fs::path dir = temp_dir("single");
  auto files = write_safetensors_model(dir, fx.named, DType::F32, 1 << 20);
  EXPECT_EQ(files, std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  SafetensorsStore s(dir.string());
  EXPECT_FALSE(s.sharded());
  EXPECT_EQ(s.names().size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(s.to_float(fmt::format("t{}", i)).data, fx.ts[i].data);
}

TEST(SafetensorsStore, ShardedRoundTrip) {
  Fixture fx;
  const fs::path dir = temp_dir("sharded");
  // 840 bytes in all; at most 300 per shard -> {t0,t1,t2} 240, {t3} 160, {t4} 200, {t5} 240.
  auto files = write_safetensors_model(dir, fx.named, DType::F32, 300);
  const std::vector<std::string> expect = {
      "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors",
      "model-00004-of-00004.safetensors", "model.safetensors.index.json"};
  EXPECT_EQ(files, expect);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  for (const auto& f : expect) EXPECT_TRUE(fs::exists(dir / f)) << f;

  auto idx = read_json(dir / "model.safetensors.index.json");
  EXPECT_EQ(idx["metadata"]["total_size"], 840);
  EXPECT_EQ(idx["weight_map"]["t0"], expect[0]);
  EXPECT_EQ(idx["weight_map"]["t2"], expect[0]);
  EXPECT_EQ(idx["weight_map"]["t3"], expect[1]);
  EXPECT_EQ(idx["weight_map"]["t5"], expect[3]);

  SafetensorsStore s(dir.string());
  EXPECT_TRUE(s.sharded());
  EXPECT_EQ(s.names().size(), 6u);
  EXPECT_EQ(s.file_of("t4"), (dir / expect[2]).string());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(s.to_float(fmt::format("t{}", i)).data, fx.ts[i].data);
  EXPECT_HAS(error_of([&] { s.get("nope"); }), dir.string() + ": missing tensor nope");
  EXPECT_HAS(error_of([&] { s.to_float("nope"); }), dir.string() + ": missing tensor nope");
}

TEST(SafetensorsStore, ShardedBF16TotalSize) {
  Fixture fx;
  const fs::path dir = temp_dir("sharded-bf16");
  write_safetensors_model(dir, fx.named, DType::BF16, 100);
  EXPECT_EQ(read_json(dir / "model.safetensors.index.json")["metadata"]["total_size"], 420);
  SafetensorsStore s(dir.string());
  EXPECT_EQ(s.get("t5").dtype, DType::BF16);
  EXPECT_EQ(s.to_float("t5").shape, (Shape{6, 10}));
}

TEST(SafetensorsStoreErrors, ShardNameEscapingTheDirectory) {
  const fs::path root = temp_dir("escape");
  const fs::path dir = root / "model";
  fs::create_directories(dir);
  const TypedTensor t = Tensor(Shape{1}, {1});
  write_safetensors(root / "x.safetensors", {{"w", &t}}, DType::F32);
  const std::string index = (dir / "model.safetensors.index.json").string();

  write_index(dir, {{"w", "../x.safetensors"}});
  std::string msg = error_of([&] { SafetensorsStore s(dir.string()); });
  EXPECT_HAS(msg, index + ": shard file '../x.safetensors' escapes the model directory");

  write_index(dir, {{"w", "sub/../../x.safetensors"}});
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }), "escapes the model directory");

  write_index(dir, {{"w", (root / "x.safetensors").string()}});
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }), index + ": shard file '" + root.string());
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }), "is an absolute path");
}

TEST(SafetensorsStoreErrors, MissingShardFile) {
  const fs::path dir = temp_dir("noshard");
  write_index(dir, {{"w", "model-00001-of-00002.safetensors"}});
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }),
             (dir / "model-00001-of-00002.safetensors").string() + ": shard file");
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }), "does not exist");
}

TEST(SafetensorsStoreErrors, TensorListedButAbsentFromShard) {
  const fs::path dir = temp_dir("absent");
  const TypedTensor t = Tensor(Shape{1}, {1});
  write_safetensors(dir / "a.safetensors", {{"w", &t}}, DType::F32);
  write_index(dir, {{"w", "a.safetensors"}, {"v", "a.safetensors"}});
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }),
             (dir / "a.safetensors").string() + ": tensor v is listed in model.safetensors.index.json but absent");
}

TEST(SafetensorsStoreErrors, MalformedIndex) {
  const fs::path dir = temp_dir("badindex");
  const std::string index = (dir / "model.safetensors.index.json").string();
  write_bytes(index, "{\"weight_map\": ");
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }), index + ": malformed JSON");
  write_bytes(index, "{\"metadata\": {}}");
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }), index + ": no weight_map object");
  write_bytes(index, "{\"weight_map\": {\"w\": 3}}");
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }), index + ": weight_map entry for 'w'");
}

TEST(SafetensorsStoreErrors, NoWeights) {
  const fs::path dir = temp_dir("empty");
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }),
             dir.string() + ": no model.safetensors or model.safetensors.index.json");
  EXPECT_HAS(error_of([&] { SafetensorsStore s((dir / "nodir").string()); }), "not a directory");
}

TEST(SafetensorsStoreErrors, BrokenShardNamesItsFile) {
  const fs::path dir = temp_dir("brokenshard");
  write_bytes(dir / "s.safetensors", std::string("\x05\0\0", 3));
  write_index(dir, {{"w", "s.safetensors"}});
  EXPECT_HAS(error_of([&] { SafetensorsStore s(dir.string()); }), (dir / "s.safetensors").string() + ": truncated");
}
