// Progress lines on stderr for long work ("\r"-updated on a terminal, one line per
// ~10% otherwise so logs stay short).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace mlar {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace mlar
