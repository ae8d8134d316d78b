// util/stream_file.h: the buffered writer and copy_file_data (kernel copy and the
// read/write fallback), and the fault hook's byte accounting.
#include <gtest/gtest.h>

#include "common/test_data.h"
#include "stream_helpers.h"
#include "util/error.h"
#include "util/stream_file.h"

namespace fs = std::filesystem;
using namespace mlar;
using namespace mlar::test;

namespace {

std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

struct FallbackReset {
  ~FallbackReset() { set_copy_fallback_for_tests(false); }
};

}  // namespace

TEST(StreamFile, CopyAppendsTheRangeByKernelAndByFallback) {
  FallbackReset reset;
  // 150 MiB crosses the 64 MiB copy steps (and the 1 MiB fallback buffer) unevenly.
  const std::string data = pattern((150u << 20) + 12345, 3);
  for (bool fallback : {false, true}) {
    SCOPED_TRACE(fallback);
    set_copy_fallback_for_tests(fallback);
    const fs::path dir = temp_dir("copy");
    RemoveOnExit src_path(dir / "src");
    OutFd src(src_path.path());
    src.write(data.data(), data.size());
    {
      OutFd out(dir / "out");
      out.write("head", 4);
      copy_file_data(src, 777, data.size() - 1000, out, /*punch_source=*/true);
      EXPECT_EQ(out.size(), 4 + data.size() - 1000);
      out.write("tail", 4);
      out.sync_and_close();
    }
    const std::string got = file_bytes(dir / "out");
    ASSERT_EQ(got.size(), 8 + data.size() - 1000);
    EXPECT_TRUE(got == "head" + data.substr(777, data.size() - 1000) + "tail");
  }
}

TEST(StreamFile, FaultHookCountsBytesAcrossWritesAndCopies) {
  FaultReset reset;
  const fs::path dir = temp_dir("fault");
  OutFd a(dir / "a");
  const std::string data = pattern(5000, 1);
  set_write_fault_after_bytes(6000);
  a.write(data.data(), data.size());
  a.flush();  // 5000 written
  OutFd b(dir / "b");
  try {
    copy_file_data(a, 0, 5000, b, false);  // only 1000 more allowed
    FAIL() << "no fault";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), (dir / "b").string() + ": write failed: No space left on device");
  }
  EXPECT_EQ(fs::file_size(dir / "b"), 1000u);
  set_write_fault_after_bytes(-1);
  b.write(data.data(), 10);
  EXPECT_NO_THROW(b.sync_and_close());
}

TEST(StreamFile, RefusesAnExistingFile) {
  const fs::path dir = temp_dir("exists");
  { OutFd a(dir / "a"); }
  try {
    OutFd again(dir / "a");
    FAIL() << "opened an existing file";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "cannot create: File exists");
  }
}
