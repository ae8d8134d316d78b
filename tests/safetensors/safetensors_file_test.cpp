// Single safetensors files: write -> read round trips and every malformed input.
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/test_data.h"
#include "helpers.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "util/half.h"

namespace fs = std::filesystem;
using namespace mlar;
using namespace mlar::test;

namespace {

std::string tmp_file(const std::string& tag) { return (fs::path(temp_dir(tag)) / "t.safetensors").string(); }

// Values exactly representable in `d`.
Tensor representable(Shape s, uint32_t seed, DType d) {
  Tensor t = random_tensor(std::move(s), seed, 3.0f);
  for (float& x : t.data) {
    if (d == DType::F16) x = f16_to_f32(f32_to_f16(x));
    if (d == DType::BF16) x = bf16_to_f32(f32_to_bf16(x));
  }
  return t;
}

void round_trip(DType d) {
  const TypedTensor a = representable({5, 7}, 1, d), b = representable({3}, 2, d), c = representable({2, 3, 4}, 3, d);
  const TypedTensor empty = Tensor(Shape{0, 4});
  const TypedTensor scalar = Tensor(Shape{}, {d == DType::F32 ? 0.1f : 0.5f});
  const std::string path = tmp_file(std::string("rt-") + dtype_name(d));
  write_safetensors(path, {{"a", &a}, {"b.weight", &b}, {"empty", &empty}, {"c", &c}, {"scalar", &scalar}}, d);

  SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  // Written in the given order, contiguous.
  EXPECT_EQ(f.tensors()[0].name, "a");
  EXPECT_EQ(f.tensors()[1].name, "b.weight");
  EXPECT_EQ(f.get("c").dtype, d);
  for (auto [name, t] : {std::pair{"a", &a}, {"b.weight", &b}, {"c", &c}, {"empty", &empty}, {"scalar", &scalar}}) {
    Tensor r = f.to_float(name);
    EXPECT_EQ(r.shape, t->shape) << name;
    EXPECT_EQ(r.data, t->to_f32().data) << name;
  }
  EXPECT_EQ(f.get("c").nbytes(), 24 * dtype_size(d));
}

}  // namespace

TEST(SafetensorsFile, RoundTripF32) { round_trip(DType::F32); }
TEST(SafetensorsFile, RoundTripF16) { round_trip(DType::F16); }
TEST(SafetensorsFile, RoundTripBF16) { round_trip(DType::BF16); }

TEST(SafetensorsFile, F16AndBF16RoundToNearest) {
  Tensor t(Shape{3}, {1.0f + 1.0f / 4096, 1.0f / 3, -65504.0f});
  const TypedTensor typed = t;
  const std::string p16 = tmp_file("near16"), pb = tmp_file("nearbf");
  write_safetensors(p16, {{"t", &typed}}, DType::F16);
  write_safetensors(pb, {{"t", &typed}}, DType::BF16);
  Tensor h = SafetensorsFile(p16).to_float("t"), b = SafetensorsFile(pb).to_float("t");
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(h.data[i], f16_to_f32(f32_to_f16(t.data[i])));
    EXPECT_EQ(b.data[i], bf16_to_f32(f32_to_bf16(t.data[i])));
    EXPECT_NEAR(h.data[i], t.data[i], std::abs(t.data[i]) * 1e-3);
  }
}

TEST(SafetensorsFile, HeaderIsPaddedJsonWithMetadata) {
  const TypedTensor t = Tensor(Shape{3}, {1, 2, 3});
  const std::string path = tmp_file("pad");
  write_safetensors(path, {{"abc", &t}}, DType::F32);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 12);
  auto j = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(j["__metadata__"]["format"], "pt");
  EXPECT_EQ(j["abc"]["dtype"], "F32");
  EXPECT_EQ(j["abc"]["shape"], nlohmann::json({3}));
  EXPECT_EQ(j["abc"]["data_offsets"], nlohmann::json({0, 12}));
  EXPECT_EQ(bytes.substr(8 + n), f32_bytes({1, 2, 3}));
}

TEST(SafetensorsFile, ReadsUnpaddedUnalignedFiles) {
  // As another writer might produce: no padding, so the data starts unaligned.
  std::string h = R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                  R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  if ((8 + h.size()) % 4 == 0) h += ' ';
  ASSERT_NE((8 + h.size()) % 4, 0u);
  const std::string path = tmp_file("unaligned");
  write_bytes(path, safetensors_bytes(h, f32_bytes({1.5f, -2.0f, 7.25f})));
  SafetensorsFile f(path);
  EXPECT_EQ(f.to_float("x").data, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f.to_float("y").data, (std::vector<float>{7.25f}));
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.find("z"), nullptr);
  EXPECT_HAS(error_of([&] { f.get("z"); }), path + ": no tensor 'z'");
}

TEST(SafetensorsFile, EmptyFileWithOnlyMetadata) {
  const std::string path = tmp_file("meta-only");
  write_bytes(path, safetensors_bytes(R"({"__metadata__":{"format":"pt"}})", ""));
  SafetensorsFile f(path);
  EXPECT_TRUE(f.tensors().empty());
}

// ---- malformed files: each error is "<file>: <problem>" ----

namespace {

std::string open_error(const std::string& tag, const std::string& bytes) {
  const std::string path = tmp_file(tag);
  write_bytes(path, bytes);
  std::string msg = error_of([&] { SafetensorsFile f(path); });
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << "message does not start with the file: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
  return msg;
}

std::string tensor_json(const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
  return fmt::format(R"("dtype":"{}","shape":{},"data_offsets":[{},{}])", dtype, shape, b, e);
}

}  // namespace

TEST(SafetensorsFileErrors, TruncatedBeforeHeaderSize) {
  EXPECT_HAS(open_error("trunc", std::string("\x10\0\0", 3)), "truncated");
}

TEST(SafetensorsFileErrors, TruncatedData) {
  std::string good = safetensors_bytes(R"({"x":{)" + tensor_json("F32", "[2]", 0, 8) + "}}", f32_bytes({1, 2}));
  EXPECT_HAS(open_error("trunc-data", good.substr(0, good.size() - 1)), "outside the data region");
}

TEST(SafetensorsFileErrors, HeaderSizeBeyondFile) {
  std::string b = safetensors_bytes(R"({"x":{)" + tensor_json("F32", "[1]", 0, 4) + "}}", f32_bytes({1}));
  b[0] = '\xff';
  b[1] = '\xff';
  EXPECT_HAS(open_error("hsize", b), "header size 65535 exceeds the file");
  std::string huge = b;
  huge[7] = '\x7f';
  EXPECT_HAS(open_error("hsize2", huge), "exceeds the file");
}

TEST(SafetensorsFileErrors, MalformedJson) {
  EXPECT_HAS(open_error("json", safetensors_bytes(R"({"x": {"dtype": "F32",)", "")), "malformed JSON header");
  EXPECT_HAS(open_error("json2", safetensors_bytes("[1, 2]   ", "")), "does not start with '{'");
  EXPECT_HAS(open_error("json3", safetensors_bytes(R"({"x": 3})", "")), "tensor 'x' is not an object");
}

TEST(SafetensorsFileErrors, OffsetOutsideFile) {
  const std::string h = R"({"x":{)" + tensor_json("F32", "[2]", 4, 12) + "}}";
  EXPECT_HAS(open_error("outside", safetensors_bytes(h, f32_bytes({1, 2}))),
             "tensor 'x' data_offsets [4, 12) lie outside the data region of 8 bytes");
}

TEST(SafetensorsFileErrors, BeginAfterEnd) {
  const std::string h = R"({"x":{)" + tensor_json("F32", "[1]", 8, 4) + "}}";
  EXPECT_HAS(open_error("beginend", safetensors_bytes(h, f32_bytes({1, 2}))), "tensor 'x' data_offsets [8, 4)");
}

TEST(SafetensorsFileErrors, OverlappingTensors) {
  const std::string h =
      R"({"a":{)" + tensor_json("F32", "[2]", 0, 8) + R"(},"b":{)" + tensor_json("F32", "[2]", 4, 12) + "}}";
  std::string msg = open_error("overlap", safetensors_bytes(h, f32_bytes({1, 2, 3})));
  EXPECT_HAS(msg, "overlaps");
  EXPECT_HAS(msg, "'b'");
  EXPECT_HAS(msg, "'a'");
}

TEST(SafetensorsFileErrors, GapBetweenTensors) {
  const std::string h =
      R"({"a":{)" + tensor_json("F32", "[1]", 0, 4) + R"(},"b":{)" + tensor_json("F32", "[1]", 8, 12) + "}}";
  EXPECT_HAS(open_error("gap", safetensors_bytes(h, f32_bytes({1, 2, 3}))),
             "gap of 4 bytes in the data region before tensor 'b'");
}

TEST(SafetensorsFileErrors, TrailingBytesNotCovered) {
  const std::string h = R"({"a":{)" + tensor_json("F32", "[1]", 0, 4) + "}}";
  EXPECT_HAS(open_error("trailing", safetensors_bytes(h, f32_bytes({1, 2}))), "4 bytes after the last tensor");
}

TEST(SafetensorsFileErrors, UnknownDtype) {
  const std::string h = R"({"w":{)" + tensor_json("Q4_K", "[4]", 0, 4) + "}}";
  EXPECT_HAS(open_error("dtype", safetensors_bytes(h, "abcd")), "tensor 'w' has unknown dtype 'Q4_K'");
}

TEST(SafetensorsFileErrors, UnsupportedDtypeRefusedOnConversion) {
  // A valid safetensors dtype that is not a float one: the file opens, conversion refuses.
  const std::string h = R"({"ids":{)" + tensor_json("I64", "[1]", 0, 8) + "}}";
  const std::string path = tmp_file("i64");
  write_bytes(path, safetensors_bytes(h, std::string(8, '\0')));
  SafetensorsFile f(path);
  EXPECT_EQ(f.get("ids").dtype, DType::I64);
  EXPECT_HAS(error_of([&] { f.to_float("ids"); }),
             path + ": tensor 'ids' has dtype I64; only F32, F16 and BF16 are supported");
}

TEST(SafetensorsFileErrors, ByteCountNotMatchingShape) {
  const std::string h = R"({"x":{)" + tensor_json("F32", "[4]", 0, 12) + "}}";
  EXPECT_HAS(open_error("count", safetensors_bytes(h, f32_bytes({1, 2, 3}))),
             "tensor 'x' data_offsets [0, 12) hold 12 bytes, shape [4] of F32 needs 16");
  const std::string h16 = R"({"x":{)" + tensor_json("BF16", "[4]", 0, 16) + "}}";
  EXPECT_HAS(open_error("count16", safetensors_bytes(h16, f32_bytes({1, 2, 3, 4}))), "shape [4] of BF16 needs 8");
}

TEST(SafetensorsFileErrors, HugeShapeDoesNotOverflow) {
  const std::string h = R"({"x":{)" + tensor_json("F32", "[4294967296, 4294967296]", 0, 4) + "}}";
  EXPECT_HAS(open_error("overflow", safetensors_bytes(h, f32_bytes({1}))), "needs more than 2^64");
}

TEST(SafetensorsFileErrors, NegativeOrFractionalShape) {
  const std::string h = R"({"x":{)" + tensor_json("F32", "[-1]", 0, 4) + "}}";
  EXPECT_HAS(open_error("neg", safetensors_bytes(h, f32_bytes({1}))), "tensor 'x' has an invalid shape [-1]");
  const std::string h2 = R"({"x":{)" + tensor_json("F32", "[1.5]", 0, 4) + "}}";
  EXPECT_HAS(open_error("frac", safetensors_bytes(h2, f32_bytes({1}))), "tensor 'x' has an invalid shape [1.5]");
}

TEST(SafetensorsFileErrors, BadDataOffsets) {
  const std::string h = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})";
  EXPECT_HAS(open_error("offs", safetensors_bytes(h, f32_bytes({1}))), "tensor 'x' needs data_offsets");
  const std::string h2 = R"({"x":{"dtype":"F32","shape":[1]}})";
  EXPECT_HAS(open_error("offs2", safetensors_bytes(h2, f32_bytes({1}))), "tensor 'x' needs data_offsets");
}

TEST(SafetensorsFileErrors, DuplicateNames) {
  const std::string h =
      R"({"a":{)" + tensor_json("F32", "[1]", 0, 4) + R"(},"a":{)" + tensor_json("F32", "[1]", 4, 8) + "}}";
  EXPECT_HAS(open_error("dup", safetensors_bytes(h, f32_bytes({1, 2}))), "duplicate key 'a'");
}

TEST(SafetensorsFileErrors, MetadataMustMapStrings) {
  const std::string h = R"({"__metadata__":{"format":3}})";
  EXPECT_HAS(open_error("meta", safetensors_bytes(h, "")), "__metadata__ value for 'format' is not a string");
}

TEST(SafetensorsFileErrors, MissingFile) {
  const std::string path = (fs::path(temp_dir("nofile")) / "absent.safetensors").string();
  EXPECT_HAS(error_of([&] { SafetensorsFile f(path); }), path + ": cannot open");
}

TEST(SafetensorsWriter, RefusesDuplicatesAndExistingFiles) {
  const TypedTensor t = Tensor(Shape{1}, {1});
  const std::string path = tmp_file("wdup");
  EXPECT_HAS(error_of([&] { write_safetensors(path, {{"a", &t}, {"a", &t}}, DType::F32); }),
             "duplicate tensor name 'a'");
  EXPECT_FALSE(fs::exists(path));
  write_safetensors(path, {{"a", &t}}, DType::F32);
  EXPECT_HAS(error_of([&] { write_safetensors(path, {{"b", &t}}, DType::F32); }), "already exists");
  write_safetensors(path, {{"b", &t}}, DType::F32, /*force=*/true);
  EXPECT_NE(SafetensorsFile(path).find("b"), nullptr);
  // No temporary files left behind.
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path())) n += e.is_regular_file();
  EXPECT_EQ(n, 1u);
  EXPECT_HAS(error_of([&] { write_safetensors(path, {{"c", &t}}, DType::I32, true); }), "cannot write dtype I32");
}

TEST(SafetensorsWriter, ParsesOutputDtypes) {
  EXPECT_EQ(parse_write_dtype("bf16", "x"), DType::BF16);
  EXPECT_EQ(parse_write_dtype("float16", "x"), DType::F16);
  EXPECT_EQ(parse_write_dtype("F32", "x"), DType::F32);
  EXPECT_HAS(error_of([] { parse_write_dtype("Q8_0", "out"); }), "out: unsupported output dtype 'Q8_0'");
}
