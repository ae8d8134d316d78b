// Low-level pieces of the streaming writers (io/safetensors_stream.h,
// io/gguf_stream.h): a buffered, checked file descriptor, a kernel-side copy of a
// byte range from one file onto the end of another, and a path removed unless
// kept. Every write goes through the fault hook of util/write_fault.h.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mlar {

class OutFd;
void copy_file_data(OutFd& in, uint64_t offset, uint64_t len, OutFd& out, bool punch_source);

// A file opened for sequential writing (created; refused if it exists, since
// every caller writes a fresh temporary name). Small writes are buffered (1 MiB),
// large ones go straight through. Failures throw mlar::Error
// "<path>: write failed: <strerror>". The descriptor is also readable, so a
// temporary data file can be copied from (copy_file_data) after flush().
class OutFd {
 public:
  explicit OutFd(const std::filesystem::path& path);
  ~OutFd();
  OutFd(const OutFd&) = delete;
  OutFd& operator=(const OutFd&) = delete;

  void write(const void* data, size_t n);
  void zeros(uint64_t n);
  void flush();
  void sync();             // flush + fsync
  void sync_and_close();   // flush + fsync + close, each checked
  int fd() const { return fd_; }
  uint64_t size() const { return written_; }  // bytes written so far (buffered included)
  const std::string& path() const { return path_; }

 private:
  friend void copy_file_data(OutFd& in, uint64_t offset, uint64_t len, OutFd& out, bool punch_source);
  void raw(const uint8_t* p, size_t n);

  std::string path_;
  int fd_ = -1;
  std::vector<uint8_t> buf_;
  uint64_t written_ = 0;
};

// Appends `len` bytes of the file `in` (from byte `offset`) to `out`:
// copy_file_range, falling back to a pread/write loop where the kernel or the
// file systems refuse it. With `punch_source`, the copied range of `in` is
// deallocated as the copy advances (FALLOC_FL_PUNCH_HOLE, best effort), so the
// disk holds about one copy of the data rather than two.
void copy_file_data(OutFd& in, uint64_t offset, uint64_t len, OutFd& out, bool punch_source);

// Tests: makes copy_file_data take its read/write fallback (true) or not (false).
void set_copy_fallback_for_tests(bool on);

// fsyncs a directory (after renames in it); failures throw naming it.
void sync_directory(const std::filesystem::path& dir);

// Removes `path` (a file) on destruction unless keep() was called.
class RemoveOnExit {
 public:
  RemoveOnExit() = default;
  explicit RemoveOnExit(std::filesystem::path p) : path_(std::move(p)) {}
  ~RemoveOnExit();
  RemoveOnExit(RemoveOnExit&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  RemoveOnExit& operator=(RemoveOnExit&& o) noexcept;
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;
  const std::filesystem::path& path() const { return path_; }
  void keep() { path_.clear(); }
  void remove_now();

 private:
  std::filesystem::path path_;
};

}  // namespace mlar
