#include "tensor/spill.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "util/error.h"

namespace mlar {
namespace {

// Unmaps on destruction: the owner of the spilled view's bytes.
struct Mapping {
  void* addr = nullptr;
  size_t len = 0;
  ~Mapping() {
    if (addr) munmap(addr, len);
  }
};

}  // namespace

TypedTensor spill_to_file(const TypedTensor& t) {
  if (t.empty()) return t;
  std::string name = (std::filesystem::temp_directory_path() / "mlar-spill-XXXXXX").string();
  const int fd = mkstemp(name.data());
  if (fd < 0) fail("{}: cannot create a temporary file: {}", name, std::strerror(errno));
  unlink(name.data());  // gone with the mapping
  const size_t n = t.nbytes();
  const auto* p = static_cast<const char*>(t.data());
  for (size_t done = 0; done < n;) {
    const ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int e = errno;
      ::close(fd);
      fail("{}: write failed: {}", name, std::strerror(w < 0 ? e : ENOSPC));
    }
    done += static_cast<size_t>(w);
  }
  void* addr = mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, 0);
  const int e = errno;
  ::close(fd);
  if (addr == MAP_FAILED) fail("{}: cannot map: {}", name, std::strerror(e));
  auto m = std::make_shared<Mapping>();
  m->addr = addr;
  m->len = n;
  return TypedTensor::view(t.dtype, t.shape, addr, m);
}

}  // namespace mlar
