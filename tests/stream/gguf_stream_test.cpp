// GgufStreamWriter: byte identity with GgufWriter, round trips through GgufFile,
// refusals, and clean-up after a failed write.
#include <gtest/gtest.h>

#include <cstring>

#include "common/test_data.h"
#include "io/gguf.h"
#include "io/gguf_stream.h"
#include "io/gguf_writer.h"
#include "stream_helpers.h"
#include "util/error.h"
#include "util/half.h"

namespace fs = std::filesystem;
using namespace mlar;
using namespace mlar::test;

namespace {

GgufMetadata sample_metadata(uint32_t alignment) {
  GgufMetadata m("test");
  m.set("general.architecture", "llama");
  m.set("general.name", "stream test");
  if (alignment) m.set("general.alignment", alignment);
  m.set("llama.block_count", uint32_t{3});
  m.set("llama.rope.freq_base", 500000.0f);
  m.set("llama.use_bias", false);
  m.set("some.u64", uint64_t{1} << 40);
  m.set("some.i8", int8_t{-3});
  m.set("some.f64", 0.125);
  m.set("tokenizer.ggml.tokens", GgufValue::strings({"<s>", "</s>", "a", "bc"}));
  m.set("tokenizer.ggml.scores", GgufValue::floats({0.f, -1.f, -2.5f, 3.f}));
  m.set("tokenizer.ggml.token_type", GgufValue::ints({3, 3, 1, 1}));
  m.set("nested", GgufValue::array(GgufValueType::Array, {GgufValue::ints({1, 2}), GgufValue::strings({"x"})}));
  return m;
}

struct Case {
  std::string name;
  Tensor t;
  GgmlType type;
};

std::vector<Case> sample_cases() {
  return {
      {"token_embd.weight", random_tensor({11, 8}, 1), GgmlType::F16},
      {"blk.0.attn_norm.weight", random_tensor({8}, 2), GgmlType::F32},
      {"blk.0.attn_q.weight", random_tensor({8, 8}, 3), GgmlType::BF16},
      {"blk.0.ffn_up.weight", random_tensor({3, 5, 7}, 4), GgmlType::F16},  // 105 values: padding
      {"odd", random_tensor({3}, 5), GgmlType::BF16},
      {"scalar", random_tensor({}, 6), GgmlType::F32},
      {"empty", Tensor(Shape{0, 4}), GgmlType::F32},
      {"output.weight", random_tensor({11, 8}, 7), GgmlType::F32},
  };
}

// Q8_0 bytes (34 per block of 32 values): contents are opaque to both writers.
std::vector<uint8_t> q8_bytes(size_t blocks) {
  std::vector<uint8_t> b(blocks * 34);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 31 + 7);
  return b;
}

}  // namespace

TEST(GgufStream, ByteIdenticalToGgufWriter) {
  for (uint32_t alignment : {0u, 64u, 1u}) {
    SCOPED_TRACE(alignment);
    const fs::path dir = temp_dir("gguf-ident");
    const auto cases = sample_cases();
    GgufWriter ref;
    const GgufMetadata meta = sample_metadata(alignment);
    for (const auto& [k, v] : meta.entries()) ref.set(k, v);
    for (const auto& c : cases) ref.add_tensor(c.name, c.t, c.type);
    ref.add_raw_tensor("q8", {64, 2}, static_cast<uint32_t>(GgmlType::Q8_0), q8_bytes(4));
    ref.write(dir / "ref.gguf");

    GgufStreamWriter w(dir / "stream.gguf", sample_metadata(alignment));
    EXPECT_EQ(w.alignment(), alignment ? alignment : 32u);
    for (const auto& c : cases) w.add_tensor(c.name, c.t, c.type);
    const auto q8 = q8_bytes(4);
    w.add_raw("q8", {64, 2}, static_cast<uint32_t>(GgmlType::Q8_0), q8.data(), q8.size());
    w.finish();
    const std::string a = file_bytes(dir / "ref.gguf"), b = file_bytes(dir / "stream.gguf");
    EXPECT_EQ(a.size(), b.size());
    EXPECT_TRUE(a == b);
    EXPECT_EQ(dir_entries(dir), (std::vector<std::string>{"ref.gguf", "stream.gguf"}));
  }
}

TEST(GgufStream, RoundTripThroughTheReaderFromEverySourceType) {
  const fs::path path = fs::path(temp_dir("gguf-rt")) / "m.gguf";
  const uint64_t n = kStreamChunkElems * 2 + 5;  // crosses two chunk boundaries
  const Tensor f = random_tensor({2, static_cast<int64_t>(n / 2)}, 9, 2.0f);
  const uint64_t m = f.data.size();
  std::vector<uint16_t> bf(m), h(m);
  for (uint64_t i = 0; i < m; ++i) {
    bf[i] = f32_to_bf16(f.data[i]);
    h[i] = f32_to_f16(f.data[i]);
  }
  const std::vector<int64_t> ne = {f.shape[1], f.shape[0]};
  {
    GgufStreamWriter w(path, sample_metadata(0));
    w.add("f32_from_bf16", GgmlType::F32, ne, bf.data(), DType::BF16);
    w.add("bf16_from_f16", GgmlType::BF16, ne, h.data(), DType::F16);
    w.add("f16_from_f32", GgmlType::F16, ne, f.ptr(), DType::F32);
    w.add("filled", GgmlType::F16, ne, [&](uint64_t first, uint64_t count, void* dst) {
      std::memcpy(dst, h.data() + first, count * 2);
    });
    w.finish();
  }
  GgufFile g(path.string());
  EXPECT_EQ(g.metadata().get_string("general.name"), "stream test");
  EXPECT_EQ(g.metadata().get_string_array("tokenizer.ggml.tokens").size(), 4u);
  ASSERT_EQ(g.tensors().size(), 4u);
  EXPECT_EQ(g.tensor("bf16_from_f16").type, static_cast<uint32_t>(GgmlType::BF16));
  const Tensor a = g.read_tensor("f32_from_bf16"), b = g.read_tensor("bf16_from_f16"),
               c = g.read_tensor("f16_from_f32"), d = g.read_tensor("filled");
  EXPECT_EQ(a.shape, f.shape);
  size_t bad = 0;
  for (uint64_t i = 0; i < m; ++i) {
    bad += a.data[i] != bf16_to_f32(bf[i]);
    bad += b.data[i] != bf16_to_f32(f32_to_bf16(f16_to_f32(h[i])));
    bad += c.data[i] != f16_to_f32(h[i]);
    bad += d.data[i] != f16_to_f32(h[i]);
  }
  EXPECT_EQ(bad, 0u);
}

TEST(GgufStream, Refusals) {
  const fs::path dir = temp_dir("gguf-refuse");
  const Tensor t = random_tensor({4}, 1);
  {
    GgufStreamWriter w(dir / "a.gguf", sample_metadata(0));
    w.add_tensor("x", t);
    try {
      w.add_tensor("x", t);
      FAIL() << "duplicate accepted";
    } catch (const Error& e) {
      EXPECT_HAS(e.what(), "duplicate tensor x");
      EXPECT_HAS(e.what(), (dir / "a.gguf").string());
    }
    EXPECT_THROW(w.add("q", GgmlType::Q4_0, {32}, t.ptr(), DType::F32), Error);
    EXPECT_THROW(w.add("five", GgmlType::F32, {1, 1, 1, 1, 4}, t.ptr(), DType::F32), Error);
    EXPECT_THROW(w.add_raw("short", {32}, static_cast<uint32_t>(GgmlType::Q8_0), t.ptr(), 16), Error);
    w.finish();
  }
  EXPECT_EQ(GgufFile((dir / "a.gguf").string()).tensors().size(), 1u);
  EXPECT_THROW(GgufStreamWriter(dir / "a.gguf", sample_metadata(0)), Error);  // exists
  GgufMetadata bad("t");
  bad.set("general.alignment", uint32_t{24});
  EXPECT_THROW(GgufStreamWriter(dir / "b.gguf", bad), Error);
  {
    GgufStreamWriter w(dir / "c.gguf", sample_metadata(0));
    w.add_tensor("x", t);
  }  // never finished
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"a.gguf"});
}

TEST(GgufStream, InjectedEnospcLeavesNothingBehind) {
  FaultReset reset;
  const fs::path parent = temp_dir("gguf-fault");
  const auto cases = sample_cases();
  {
    GgufWriter in;
    for (const auto& c : cases) in.add_tensor(c.name, c.t, c.type);
    in.write(parent / "input.gguf");
  }
  const std::string input_bytes = file_bytes(parent / "input.gguf");
  int failures = 0;
  bool succeeded = false;
  for (int64_t after = 0; after < 100000 && !succeeded; after += after < 64 ? 5 : 97) {
    SCOPED_TRACE(after);
    set_write_fault_after_bytes(after);
    try {
      GgufStreamWriter w(parent / "out.gguf", sample_metadata(0));
      for (const auto& c : cases) w.add_tensor(c.name, c.t, c.type);
      w.finish();
      succeeded = true;
    } catch (const Error& e) {
      ++failures;
      EXPECT_HAS(e.what(), "No space left on device");
      EXPECT_HAS(e.what(), (parent / ".out.gguf").string());  // the file being written
      EXPECT_EQ(dir_entries(parent), std::vector<std::string>{"input.gguf"});
    }
    EXPECT_EQ(file_bytes(parent / "input.gguf"), input_bytes);
  }
  set_write_fault_after_bytes(-1);
  EXPECT_TRUE(succeeded);
  EXPECT_GT(failures, 20);
  EXPECT_EQ(GgufFile((parent / "out.gguf").string()).tensors().size(), cases.size());
}
