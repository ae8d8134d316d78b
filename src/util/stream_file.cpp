#include "util/stream_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/write_fault.h"

namespace fs = std::filesystem;

namespace mlar {
namespace {

constexpr size_t kBuf = 1 << 20;
bool g_force_fallback = false;

[[noreturn]] void write_failed(const std::string& path, int err) {
  fail("{}: write failed: {}", path, std::strerror(err));
}

}  // namespace

OutFd::OutFd(const fs::path& path) : path_(path.string()) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot create: {}", path_, std::strerror(errno));
  buf_.reserve(kBuf);
}

OutFd::~OutFd() {
  if (fd_ >= 0) ::close(fd_);
}

void OutFd::raw(const uint8_t* p, size_t n) {
  while (n > 0) {
    const size_t allowed = write_fault_allow(n);
    if (allowed == 0) write_failed(path_, ENOSPC);
    ssize_t w = ::write(fd_, p, allowed);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) write_failed(path_, errno);
    if (w == 0) write_failed(path_, ENOSPC);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void OutFd::write(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (buf_.size() + n > kBuf) flush();
  if (n >= kBuf) {
    raw(p, n);
  } else {
    buf_.insert(buf_.end(), p, p + n);
  }
  written_ += n;
}

void OutFd::zeros(uint64_t n) {
  static const uint8_t z[4096] = {};
  while (n > 0) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof z));
    write(z, k);
    n -= k;
  }
}

void OutFd::flush() {
  if (buf_.empty()) return;
  // Clear first: after a failure the buffer must not be written again by a retry.
  std::vector<uint8_t> pending;
  pending.swap(buf_);
  buf_.reserve(kBuf);
  raw(pending.data(), pending.size());
}

void OutFd::sync() {
  flush();
  if (::fsync(fd_) != 0) fail("{}: fsync failed: {}", path_, std::strerror(errno));
}

void OutFd::sync_and_close() {
  sync();
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("{}: close failed: {}", path_, std::strerror(errno));
}

void set_copy_fallback_for_tests(bool on) { g_force_fallback = on; }

void copy_file_data(OutFd& in, uint64_t offset, uint64_t len, OutFd& out, bool punch_source) {
  in.flush();
  out.flush();
  constexpr uint64_t kStep = 64ull << 20;  // bytes per copy_file_range call / hole punched
  bool kernel_copy = !g_force_fallback;
  std::vector<uint8_t> buf;
  uint64_t done = 0;
  while (done < len) {
    const uint64_t step = std::min(kStep, len - done);
    const size_t allowed = write_fault_allow(static_cast<size_t>(step));
    if (allowed == 0) write_failed(out.path(), ENOSPC);
    size_t got = 0;  // bytes of this step copied
    while (got < allowed) {
      const size_t want = allowed - got;
      ssize_t k = -1;
      if (kernel_copy) {
        loff_t off_in = static_cast<loff_t>(offset + done + got);
        k = ::copy_file_range(in.fd(), &off_in, out.fd(), nullptr, want, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
          kernel_copy = false;  // not supported here: copy through user space
          continue;
        }
        if (k < 0) write_failed(out.path(), errno);
        if (k == 0) fail("{}: unexpected end of {} while copying", out.path(), in.path());
      } else {
        if (buf.empty()) buf.resize(kBuf);
        const size_t n = std::min(want, buf.size());
        k = ::pread(in.fd(), buf.data(), n, static_cast<off_t>(offset + done + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) fail("{}: read failed: {}", in.path(), std::strerror(errno));
        if (k == 0) fail("{}: unexpected end of {} while copying", out.path(), in.path());
        const uint8_t* p = buf.data();
        size_t left = static_cast<size_t>(k);
        while (left > 0) {
          ssize_t w = ::write(out.fd(), p, left);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) write_failed(out.path(), errno);
          if (w == 0) write_failed(out.path(), ENOSPC);
          p += w;
          left -= static_cast<size_t>(w);
        }
      }
      got += static_cast<size_t>(k);
      out.written_ += static_cast<uint64_t>(k);
    }
    if (allowed < step) write_failed(out.path(), ENOSPC);  // the fault hook stopped it part way
    if (punch_source)  // best effort: a file system without hole punching keeps both copies
      (void)::fallocate(in.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset + done),
                        static_cast<off_t>(step));
    done += step;
  }
}

void sync_directory(const fs::path& dir) {
  const std::string p = dir.empty() ? std::string(".") : dir.string();
  const int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open directory: {}", p, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail("{}: fsync failed: {}", p, std::strerror(err));
}

RemoveOnExit::~RemoveOnExit() { remove_now(); }

RemoveOnExit& RemoveOnExit::operator=(RemoveOnExit&& o) noexcept {
  if (this != &o) {
    remove_now();
    path_ = std::move(o.path_);
    o.path_.clear();
  }
  return *this;
}

void RemoveOnExit::remove_now() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove(path_, ec);
  path_.clear();
}

}  // namespace mlar
