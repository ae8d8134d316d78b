#include "util/atomic_output.h"

#include <unistd.h>

#include <fstream>
#include <random>

#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

fs::path temp_sibling(const fs::path& final_path) {
  std::random_device rd;
  auto name = final_path.filename().string();
  if (name.empty()) name = final_path.parent_path().filename().string();
  auto tag = fmt::format(".{}.tmp-{}-{:08x}", name, ::getpid(), rd());
  return final_path.parent_path() / tag;
}

fs::path normalised(fs::path p) {
  p = p.lexically_normal();
  if (p.has_filename() == false && p.has_parent_path()) p = p.parent_path();
  return p;
}

}  // namespace

void check_output_free(const fs::path& path, bool force) {
  std::error_code ec;
  if (fs::exists(path, ec) && !force)
    fail("{}: output already exists (use --force to replace it)", path.string());
}

AtomicFile::AtomicFile(fs::path final_path, bool force) : final_(normalised(std::move(final_path))), force_(force) {
  check_output_free(final_, force_);
  if (final_.has_parent_path() && !fs::is_directory(final_.parent_path()))
    fail("{}: output directory {} does not exist", final_.string(), final_.parent_path().string());
  tmp_ = temp_sibling(final_);
}

AtomicFile::~AtomicFile() {
  if (!done_) {
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void AtomicFile::commit() {
  check_output_free(final_, force_);
  std::error_code ec;
  fs::rename(tmp_, final_, ec);
  if (ec) fail("{}: cannot rename {} into place: {}", final_.string(), tmp_.string(), ec.message());
  done_ = true;
}

AtomicDir::AtomicDir(fs::path final_path, bool force) : final_(normalised(std::move(final_path))), force_(force) {
  check_output_free(final_, force_);
  fs::path parent = final_.has_parent_path() ? final_.parent_path() : fs::path(".");
  if (!fs::is_directory(parent))
    fail("{}: parent directory {} does not exist", final_.string(), parent.string());
  tmp_ = temp_sibling(final_);
  std::error_code ec;
  fs::create_directory(tmp_, ec);
  if (ec) fail("{}: cannot create {}: {}", final_.string(), tmp_.string(), ec.message());
}

AtomicDir::~AtomicDir() {
  if (!done_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void AtomicDir::commit() {
  check_output_free(final_, force_);
  std::error_code ec;
  if (fs::exists(final_)) {
    // --force: move the old output aside first so a failure never leaves neither.
    fs::path old = temp_sibling(final_);
    fs::rename(final_, old, ec);
    if (ec) fail("{}: cannot move the existing output aside: {}", final_.string(), ec.message());
    fs::rename(tmp_, final_, ec);
    if (ec) {
      fs::rename(old, final_);
      fail("{}: cannot rename {} into place: {}", final_.string(), tmp_.string(), ec.message());
    }
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp_, final_, ec);
    if (ec) fail("{}: cannot rename {} into place: {}", final_.string(), tmp_.string(), ec.message());
  }
  done_ = true;
}

void write_text_file(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open for writing", path.string());
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) fail("{}: write failed", path.string());
}

}  // namespace mlar
