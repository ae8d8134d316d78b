// llama2.c checkpoints: the header of stories260K.bin, and malformed copies of it.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include "common/test_data.h"
#include "io/llama2c.h"
#include "util/error.h"

namespace mlar {
namespace {

const std::string kBin = "models/stories260K/stories260K.bin";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Writes `bytes` to a fresh file and returns it.
std::string spit(const std::string& bytes, const std::string& name = "model.bin") {
  const std::string path = test::temp_dir("llama2c") + "/" + name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an mlar::Error";
  return "";
}

// The error for a copy of stories260K.bin with header fields changed ({index, value}...),
// without the "<path>: " it must start with.
std::string header_error(std::initializer_list<std::pair<int, int32_t>> fields) {
  std::string bytes = slurp(test::data_path(kBin));
  for (auto [i, v] : fields) std::memcpy(bytes.data() + 4 * i, &v, 4);
  const std::string path = spit(bytes);
  const std::string msg = error_of([&] { read_llama2c(path); });
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  return msg.substr(std::min(msg.size(), path.size() + 2));
}

std::string header_error(int i, int32_t v) { return header_error({{i, v}}); }

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Llama2c, StoriesHeader) {
  const std::string path = test::data_path(kBin);
  const Model m = read_llama2c(path);
  const ModelConfig& c = m.config;
  EXPECT_EQ(m.format, "llama2c");
  EXPECT_EQ(m.source, path);
  EXPECT_EQ(m.tokenizer, nullptr);
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_layout, RopeLayout::Interleaved);
  EXPECT_TRUE(c.tie_word_embeddings);  // positive vocab_size: shared classifier
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(m.weights.lm_head.empty());
  ASSERT_EQ(m.weights.layers.size(), 5u);
  EXPECT_EQ(m.weights.embed.shape, (Shape{512, 64}));
  EXPECT_EQ(m.weights.layers[0].wk.shape, (Shape{32, 64}));
  EXPECT_EQ(m.weights.layers[4].w_down.shape, (Shape{64, 172}));
  // The first and last floats of the file land where the fixed order puts them.
  const std::string bytes = slurp(path);
  float first, last;
  std::memcpy(&first, bytes.data() + 28, 4);
  std::memcpy(&last, bytes.data() + bytes.size() - 4, 4);
  EXPECT_EQ(m.weights.embed.to_f32().data.front(), first);
  EXPECT_EQ(parameter_count(m.weights), static_cast<int64_t>((bytes.size() - 28) / 4 - 512 * 8));  // less freq_cis
  (void)last;  // freq_cis_imag, unused by the reader
  EXPECT_EQ(m.weights.final_norm.to_f32().data.back(),
            [&] {
              float x;
              std::memcpy(&x, bytes.data() + bytes.size() - 4 * (512 * 8 + 1), 4);
              return x;
            }());
}

TEST(Llama2c, SeparateClassifier) {
  // A negative vocab_size means a classifier follows the freq_cis tables.
  std::string bytes = slurp(test::data_path(kBin));
  const int32_t neg = -512;
  std::memcpy(bytes.data() + 20, &neg, 4);
  std::string cls(512 * 64 * 4, '\0');
  for (size_t i = 0; i < cls.size(); i += 4) {
    const float v = static_cast<float>(i) * 1e-6f;
    std::memcpy(cls.data() + i, &v, 4);
  }
  const Model m = read_llama2c(spit(bytes + cls));
  EXPECT_FALSE(m.config.tie_word_embeddings);
  ASSERT_EQ(m.weights.lm_head.shape, (Shape{512, 64}));
  EXPECT_EQ(m.weights.lm_head.to_f32().data[3], 12e-6f);
  EXPECT_EQ(m.config.vocab_size, 512);
}

TEST(Llama2c, TruncatedCopies) {
  const std::string bytes = slurp(test::data_path(kBin));
  for (size_t cut : {size_t{0}, size_t{10}, size_t{27}}) {
    const std::string path = spit(bytes.substr(0, cut));
    EXPECT_EQ(error_of([&] { read_llama2c(path); }),
              fmt::format("{}: truncated llama2.c header ({} bytes, need 28)", path, cut));
  }
  for (size_t cut : {size_t{28}, size_t{5000}, bytes.size() - 1}) {
    const std::string path = spit(bytes.substr(0, cut));
    const std::string msg = error_of([&] { read_llama2c(path); });
    EXPECT_EQ(msg.rfind(path + ": file is " + std::to_string(cut) + " bytes", 0), 0u) << msg;
    EXPECT_TRUE(has(msg, "needs 1056540 (truncated)")) << msg;
  }
}

TEST(Llama2c, TrailingBytes) {
  const std::string path = spit(slurp(test::data_path(kBin)) + std::string(8, 'x'));
  EXPECT_EQ(error_of([&] { read_llama2c(path); }),
            path + ": file is 1056548 bytes, the header (dim 64, hidden 172, layers 5, heads 8/4, vocab 512, "
                   "seq_len 512) needs 1056540 (trailing bytes)");
}

TEST(Llama2c, AbsurdHeaders) {
  EXPECT_EQ(header_error(0, 0), "not a llama2.c checkpoint (header field 0 is 0)");
  EXPECT_EQ(header_error(0, -64), "not a llama2.c checkpoint (header field 0 is -64)");
  EXPECT_EQ(header_error(2, 1 << 30), "not a llama2.c checkpoint (header field 2 is 1073741824)");
  EXPECT_EQ(header_error(6, -1), "not a llama2.c checkpoint (header field 6 is -1)");
  EXPECT_EQ(header_error(5, 0), "not a llama2.c checkpoint (vocab_size 0)");
  EXPECT_EQ(header_error(5, INT32_MIN), "not a llama2.c checkpoint (vocab_size -2147483648)");
  EXPECT_EQ(header_error(3, 7), "n_heads (7) does not divide dim (64)");
  EXPECT_EQ(header_error(4, 3), "num_key_value_heads (3) does not divide num_attention_heads (8)");
  EXPECT_EQ(header_error(3, 64), "head_dim (1) must be even for RoPE");
  // Large but individually plausible fields: the described model cannot exist.
  EXPECT_EQ(header_error({{0, 1 << 24}, {1, 1 << 24}, {2, 1 << 24}}),
            "not a llama2.c checkpoint (header dim 16777216, hidden 16777216, layers 16777216, vocab 512: impossibly "
            "large)");
  EXPECT_TRUE(has(header_error(1, 1 << 24), "needs"));
  // A text file is not a checkpoint.
  const std::string path = spit("hello, this is not a model file at all\n", "text.bin");
  const std::string msg = error_of([&] { read_llama2c(path); });
  EXPECT_EQ(msg.rfind(path + ": not a llama2.c checkpoint", 0), 0u) << msg;
}

}  // namespace
}  // namespace mlar
