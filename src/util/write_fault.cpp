#include "util/write_fault.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>

namespace mlar {
namespace {

std::atomic<int64_t> g_left{-1};  // bytes still allowed; -1: disarmed
std::once_flag g_env_once;

void read_env() {
  const char* e = std::getenv("MLAR_FAULT_WRITE_AFTER_BYTES");
  if (!e || !*e) return;
  char* end = nullptr;
  const long long n = std::strtoll(e, &end, 10);
  if (end && *end == '\0' && n >= 0) g_left.store(n);
}

}  // namespace

void set_write_fault_after_bytes(int64_t n) {
  std::call_once(g_env_once, [] {});  // an explicit setting wins over the environment
  g_left.store(n < 0 ? -1 : n);
}

size_t write_fault_allow(size_t want) {
  std::call_once(g_env_once, read_env);
  int64_t left = g_left.load();
  while (left >= 0) {
    const int64_t take = std::min<int64_t>(left, static_cast<int64_t>(want));
    if (g_left.compare_exchange_weak(left, left - take)) return static_cast<size_t>(take);
  }
  return want;
}

}  // namespace mlar
