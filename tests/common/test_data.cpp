#include "common/test_data.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace mlar::test {

std::string data_path(const std::string& rel) {
  const char* env = std::getenv("MLAR_DATA");
  fs::path root = env && *env ? fs::path(env) : fs::path(MLAR_DEFAULT_DATA_DIR);
  fs::path p = root / rel;
  if (!fs::exists(p)) {
    ADD_FAILURE() << "test data not found: " << p.string()
                  << " (set MLAR_DATA to the shared data directory, e.g. ../shared/data)";
    throw std::runtime_error("missing test data " + p.string());
  }
  return fs::absolute(p).lexically_normal().string();
}

std::string source_path(const std::string& rel) { return (fs::path(MLAR_SOURCE_DIR) / rel).string(); }

namespace {
struct TempRoot {
  fs::path root;
  // A fresh directory per process (mkdtemp): a name from the pid alone could meet a
  // directory left by an earlier process with the same pid (one that crashed or was
  // killed), and tests expect their temporary directories empty.
  TempRoot() {
    std::string tmpl = (fs::temp_directory_path() / "mlar-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary directory under " + tmpl);
    root = tmpl;
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};
}  // namespace

std::string temp_dir(const std::string& tag) {
  static TempRoot root;
  static int counter = 0;
  fs::path p = root.root / (tag + "-" + std::to_string(counter++));
  fs::create_directories(p);
  return p.string();
}

}  // namespace mlar::test
