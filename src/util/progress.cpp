#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace mlar {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(::isatty(2) != 0) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t done, const std::string& extra) {
  if (!enabled_ || total_ <= 0) return;
  auto now = std::chrono::steady_clock::now();
  int decile = static_cast<int>(10 * done / total_);
  double secs = std::chrono::duration<double>(now - start_).count();
  if (tty_) {
    if (now - last_ < std::chrono::milliseconds(100) && done < total_) return;
    last_ = now;
    fmt::print(stderr, "\r{}: {}/{} ({:.0f}%) {:.1f}s {}", label_, done, total_, 100.0 * done / total_, secs, extra);
    std::fflush(stderr);
  } else if (decile != last_decile_) {
    last_decile_ = decile;
    fmt::print(stderr, "{}: {}/{} ({:.0f}%) {:.1f}s {}\n", label_, done, total_, 100.0 * done / total_, secs, extra);
  }
}

void Progress::finish(const std::string& extra) {
  if (!enabled_) return;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  fmt::print(stderr, "{}{}: done in {:.2f}s {}\n", tty_ ? "\r" : "", label_, secs, extra);
}

}  // namespace mlar
