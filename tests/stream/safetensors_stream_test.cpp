// SafetensorsShardWriter: byte identity with write_safetensors_model, round trips
// through SafetensorsStore, sharding, refusals, and clean-up after a failed write.
#include <deque>
#include <gtest/gtest.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/safetensors_store.h"
#include "io/safetensors_stream.h"
#include "io/safetensors_writer.h"
#include "common/test_data.h"
#include "stream_helpers.h"
#include "util/atomic_output.h"
#include "util/error.h"
#include "util/half.h"

namespace fs = std::filesystem;
using namespace mlar;
using namespace mlar::test;

namespace {

struct Named {
  std::string name;
  Tensor t;
};

// A small model-like list: embeddings, per-layer matrices and norms, odd sizes.
std::vector<Named> sample_tensors() {
  std::vector<Named> v;
  v.push_back({"model.embed_tokens.weight", random_tensor({37, 16}, 1)});
  for (int l = 0; l < 3; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    v.push_back({p + "input_layernorm.weight", random_tensor({16}, 10 + l)});
    v.push_back({p + "self_attn.q_proj.weight", random_tensor({16, 16}, 20 + l)});
    v.push_back({p + "mlp.up_proj.weight", random_tensor({24, 16}, 30 + l)});
    v.push_back({p + "mlp.down_proj.weight", random_tensor({16, 24}, 40 + l)});
  }
  v.push_back({"model.norm.weight", random_tensor({16}, 50)});
  v.push_back({"scalar", random_tensor({}, 51)});
  return v;
}

// NamedTensor points at TypedTensors: `held` keeps the copies alive during the write.
std::vector<NamedTensor> refs(const std::vector<Named>& v, std::deque<TypedTensor>& held) {
  std::vector<NamedTensor> r;
  for (const auto& n : v) r.push_back({n.name, &held.emplace_back(n.t)});
  return r;
}

std::vector<std::string> stream_write(const fs::path& dir, const std::vector<Named>& v, DType dtype,
                                      uint64_t max_shard) {
  SafetensorsShardWriter w(dir, max_shard);
  for (const auto& n : v) w.add(n.name, dtype, n.t);
  return w.finish();
}

float rounded(float x, DType d) {
  if (d == DType::BF16) return bf16_to_f32(f32_to_bf16(x));
  if (d == DType::F16) return f16_to_f32(f32_to_f16(x));
  return x;
}

// Writes `v` both ways and expects identical file lists and bytes.
void expect_identical(const std::vector<Named>& v, DType dtype, uint64_t max_shard, size_t expect_files) {
  const fs::path a = temp_dir("st-ref"), b = temp_dir("st-stream");
  std::deque<TypedTensor> held;
  const auto ref_names = write_safetensors_model(a, refs(v, held), dtype, max_shard);
  const auto names = stream_write(b, v, dtype, max_shard);
  EXPECT_EQ(names, ref_names);
  EXPECT_EQ(names.size(), expect_files);
  EXPECT_EQ(dir_entries(b), dir_entries(a));  // no temporary files left behind
  for (const auto& n : names) EXPECT_EQ(file_bytes(b / n), file_bytes(a / n)) << n;
}

}  // namespace

TEST(SafetensorsStream, SingleFileIsByteIdenticalToTheWriter) {
  const auto v = sample_tensors();
  for (DType d : {DType::F32, DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_name(d));
    expect_identical(v, d, kDefaultMaxShardBytes, 1);
  }
}

TEST(SafetensorsStream, ShardsAreByteIdenticalToTheWriter) {
  const auto v = sample_tensors();
  // BF16 bytes: embeddings 1184, 2080 per layer, 34 at the end: 7458 in all. Split
  // greedily at 3000: [emb, n0, q0, up0] 2496, [down0 .. n2] 2880, [q2 ..] 2082.
  expect_identical(v, DType::BF16, 3000, 3 + 1);
  // F32 at 4000 (worked by hand): five shards and the index.
  expect_identical(v, DType::F32, 4000, 5 + 1);
}

TEST(SafetensorsStream, TensorLargerThanTheLimitGetsItsOwnShard) {
  std::vector<Named> v;
  v.push_back({"a", random_tensor({10}, 1)});   // 40 bytes
  v.push_back({"big", random_tensor({100}, 2)});  // 400 bytes > limit
  v.push_back({"c", random_tensor({10}, 3)});
  expect_identical(v, DType::F32, 100, 3 + 1);
  const fs::path dir = temp_dir("st-big");
  stream_write(dir, v, DType::F32, 100);
  SafetensorsStore store(dir.string());
  EXPECT_TRUE(store.sharded());
  EXPECT_EQ(fs::path(store.file_of("big")).filename(), "model-00002-of-00003.safetensors");
  EXPECT_EQ(SafetensorsFile(store.file_of("big")).tensors().size(), 1u);
}

TEST(SafetensorsStream, RoundTripThroughTheStoreWithThreeShards) {
  const auto v = sample_tensors();
  const fs::path dir = temp_dir("st-rt");
  const auto names = stream_write(dir, v, DType::BF16, 3000);
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names.back(), "model.safetensors.index.json");
  SafetensorsStore store(dir.string());
  ASSERT_TRUE(store.sharded());
  ASSERT_EQ(store.names().size(), v.size());
  for (const auto& n : v) {
    SCOPED_TRACE(n.name);
    EXPECT_EQ(store.get(n.name).dtype, DType::BF16);
    const Tensor t = store.to_float(n.name, n.t.shape);
    ASSERT_EQ(t.data.size(), n.t.data.size());
    for (size_t i = 0; i < t.data.size(); ++i) ASSERT_EQ(t.data[i], rounded(n.t.data[i], DType::BF16)) << i;
  }
  const auto index = nlohmann::json::parse(file_bytes(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), 7458u);
}

TEST(SafetensorsStream, MixedSourceAndDiskTypesAcrossChunkBoundaries) {
  // 2.5 conversion chunks, so the chunk loop is crossed twice.
  const uint64_t n = kStreamChunkElems * 5 / 2 + 3;
  const Tensor f = random_tensor({static_cast<int64_t>(n)}, 7, 3.0f);
  std::vector<uint16_t> bf(n), h(n);
  for (uint64_t i = 0; i < n; ++i) {
    bf[i] = f32_to_bf16(f.data[i]);
    h[i] = f32_to_f16(f.data[i]);
  }
  const fs::path dir = temp_dir("st-mixed");
  {
    SafetensorsShardWriter w(dir, 8 * n);  // two of the four tensors per shard
    w.add("bf16_as_f32", DType::F32, {static_cast<int64_t>(n)}, bf.data(), DType::BF16);
    w.add("f16_as_bf16", DType::BF16, {static_cast<int64_t>(n)}, h.data(), DType::F16);
    w.add("f32_as_f16", DType::F16, f);
    w.add("filled", DType::BF16, {static_cast<int64_t>(n)}, [&](uint64_t first, uint64_t count, void* dst) {
      ASSERT_LE(count, kStreamChunkElems);
      std::memcpy(dst, bf.data() + first, count * 2);
    });
    EXPECT_EQ(w.data_bytes(), n * (4 + 2 + 2 + 2));
    EXPECT_EQ(w.finish().size(), 3u);
  }
  SafetensorsStore store(dir.string());
  EXPECT_EQ(store.get("bf16_as_f32").dtype, DType::F32);
  EXPECT_EQ(store.get("f16_as_bf16").dtype, DType::BF16);
  EXPECT_EQ(store.get("f32_as_f16").dtype, DType::F16);
  const Tensor a = store.to_float("bf16_as_f32"), b = store.to_float("f16_as_bf16"), c = store.to_float("f32_as_f16"),
               d = store.to_float("filled");
  size_t bad = 0;
  for (uint64_t i = 0; i < n; ++i) {
    bad += a.data[i] != bf16_to_f32(bf[i]);                                   // exact widening
    bad += b.data[i] != bf16_to_f32(f32_to_bf16(f16_to_f32(h[i])));          // one rounding
    bad += c.data[i] != f16_to_f32(h[i]);                                     // RNE to half
    bad += d.data[i] != bf16_to_f32(bf[i]);
  }
  EXPECT_EQ(bad, 0u);
}

TEST(SafetensorsStream, NoTensorsGivesAnEmptyFileLikeTheWriter) {
  expect_identical({}, DType::F32, 100, 1);
}

TEST(SafetensorsStream, RefusesBadNamesAndKeepsGoing) {
  const fs::path dir = temp_dir("st-names");
  const Tensor t = random_tensor({4}, 1);
  SafetensorsShardWriter w(dir, 1000);
  w.add("x", DType::F32, t);
  try {
    w.add("x", DType::F32, t);
    FAIL() << "duplicate accepted";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "duplicate tensor name 'x'");
  }
  EXPECT_THROW(w.add("", DType::F32, t), Error);
  EXPECT_THROW(w.add("__metadata__", DType::F32, t), Error);
  EXPECT_THROW(w.add("bad\xff", DType::F32, t), Error);
  EXPECT_THROW(w.add("i64", DType::I64, t), Error);
  EXPECT_THROW(w.add("src", DType::F32, {4}, t.ptr(), DType::I32), Error);
  EXPECT_THROW(w.add("neg", DType::F32, {-1}, t.ptr(), DType::F32), Error);
  w.add("y", DType::F32, t);  // refusals before any byte leave the writer usable
  EXPECT_EQ(w.finish(), std::vector<std::string>{"model.safetensors"});
  SafetensorsStore store(dir.string());
  EXPECT_EQ(store.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_THROW(w.add("z", DType::F32, t), Error);  // finished
}

TEST(SafetensorsStream, RefusesExistingOutputsUnlessForced) {
  const fs::path dir = temp_dir("st-exists");
  const auto v = sample_tensors();
  stream_write(dir, v, DType::F32, kDefaultMaxShardBytes);
  const std::string before = file_bytes(dir / "model.safetensors");
  {
    SafetensorsShardWriter w(dir);
    w.add("other", DType::F32, v[0].t);
    try {
      w.finish();
      FAIL() << "replaced an existing file";
    } catch (const Error& e) {
      EXPECT_HAS(e.what(), "already exists");
    }
  }
  EXPECT_EQ(file_bytes(dir / "model.safetensors"), before);
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"model.safetensors"});
  SafetensorsShardWriter w(dir, kDefaultMaxShardBytes, /*force=*/true);
  w.add("other", DType::F32, v[0].t);
  w.finish();
  EXPECT_EQ(SafetensorsStore(dir.string()).names(), std::vector<std::string>{"other"});
}

TEST(SafetensorsStream, AbandonedWriterLeavesNothing) {
  const fs::path dir = temp_dir("st-abandon");
  {
    SafetensorsShardWriter w(dir, 100);
    for (const char* name : {"t0", "t1", "t2", "t3", "t4"}) w.add(name, DType::F32, random_tensor({10}, name[1]));
    EXPECT_EQ(w.shards_so_far(), 3u);
  }
  EXPECT_TRUE(dir_entries(dir).empty());
}

// ENOSPC after every possible number of bytes (stepping through the whole write):
// each failure names the file and strerror, leaves no output directory and no
// temporary file in the parent, and never touches the input beside it.
TEST(SafetensorsStream, InjectedEnospcLeavesNothingBehind) {
  FaultReset reset;
  const auto v = sample_tensors();
  const fs::path parent = temp_dir("st-fault");
  const fs::path input = parent / "input.safetensors";
  std::deque<TypedTensor> held;
  write_safetensors(input, refs(v, held), DType::F32);
  const std::string input_bytes = file_bytes(input);
  const fs::path out = parent / "model";
  int failures = 0;
  bool succeeded = false;
  for (int64_t after = 0; after < 100000 && !succeeded; after += after < 64 ? 7 : 613) {
    SCOPED_TRACE(after);
    set_write_fault_after_bytes(after);
    try {
      AtomicDir dir(out, false);
      SafetensorsShardWriter w(dir.tmp_path(), 3000);
      for (const auto& n : v) w.add(n.name, DType::BF16, n.t);
      w.finish();
      dir.commit();
      succeeded = true;
    } catch (const Error& e) {
      ++failures;
      EXPECT_HAS(e.what(), "No space left on device");
      EXPECT_HAS(e.what(), parent.string());
      EXPECT_EQ(dir_entries(parent), std::vector<std::string>{"input.safetensors"});
    }
    EXPECT_EQ(file_bytes(input), input_bytes);
  }
  set_write_fault_after_bytes(-1);
  EXPECT_TRUE(succeeded);
  EXPECT_GT(failures, 20);  // faults hit the data writes, the shard copies and the index
  EXPECT_EQ(dir_entries(out).size(), 4u);
  EXPECT_EQ(SafetensorsStore(out.string()).names().size(), v.size());
}
