// Running a CLI command as a user would (a child process) and measuring it: wall
// time, and peak resident memory split into anonymous (heap: what a model loaded into
// allocated memory costs) and file-backed (pages of memory-mapped weights, which the
// kernel can drop and re-read) by sampling /proc/PID/status, plus wait4's maxrss.
#pragma once
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "util/error.h"

extern char** environ;

namespace mlar::bench {

struct ChildResult {
  double seconds = 0;
  int64_t peak_rss_bytes = 0;   // wait4's ru_maxrss
  int64_t peak_anon_bytes = 0;  // max RssAnon seen
  int64_t peak_file_bytes = 0;  // max RssFile seen
  int status = 0;
};

// RssAnon and RssFile of `pid` in bytes (0, 0 when it is gone).
inline std::pair<int64_t, int64_t> rss_split(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  int64_t anon = 0, file = 0;
  while (f >> key) {
    if (key == "RssAnon:") f >> anon;
    else if (key == "RssFile:") f >> file;
    else f.ignore(1 << 12, '\n');
  }
  return {anon * 1024, file * 1024};
}

// Runs argv with stdout and stderr into `log`, sampling its memory every 20 ms.
// Fails unless it exits 0 (when `must_succeed`).
inline ChildResult run_child(const std::vector<std::string>& args, const std::string& log, bool must_succeed = true) {
  std::vector<char*> argv;
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const auto t0 = clock_type::now();
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) fail("{}: cannot start ({})", args[0], std::strerror(rc));
  ChildResult r;
  rusage ru{};
  for (;;) {
    const auto [anon, file] = rss_split(pid);
    r.peak_anon_bytes = std::max(r.peak_anon_bytes, anon);
    r.peak_file_bytes = std::max(r.peak_file_bytes, file);
    const pid_t w = wait4(pid, &r.status, WNOHANG, &ru);
    if (w == pid) break;
    if (w < 0) fail("{}: wait4 failed: {}", args[0], std::strerror(errno));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.seconds = seconds_since(t0);
  r.peak_rss_bytes = static_cast<int64_t>(ru.ru_maxrss) * 1024;
  if (must_succeed && (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0))
    fail("{} failed (status {}); see {}", args[0], r.status, log);
  return r;
}

}  // namespace mlar::bench
