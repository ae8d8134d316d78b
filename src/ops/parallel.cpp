#include "ops/parallel.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ops/threads.h"

namespace mlar::ops {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

using Fn = std::function<void(int64_t, int64_t)>;

struct Job {
  const Fn* fn = nullptr;
  int64_t n = 0, grain = 1;
  std::atomic<int64_t> next{0};  // first unclaimed item
  std::atomic<int64_t> done{0};  // items finished
};

thread_local bool t_inside = false;  // this thread is running chunks of a job

// Claims and runs chunks until none is left.
void work_on(Job& j) {
  while (true) {
    const int64_t b = j.next.fetch_add(j.grain, std::memory_order_relaxed);
    if (b >= j.n) return;
    const int64_t e = std::min(j.n, b + j.grain);
    (*j.fn)(b, e);
    j.done.fetch_add(e - b, std::memory_order_release);
  }
}

class Pool {
 public:
  static Pool& instance() {
    static Pool* p = new Pool();  // never destroyed: workers may outlive static destructors
    return *p;
  }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void resize(int threads) {
    std::lock_guard<std::mutex> lk(dispatch_);
    stop_workers();
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    threads_.store(static_cast<int>(workers_.size()) + 1, std::memory_order_relaxed);
  }

  void run(int64_t n, int64_t grain, const Fn& fn) {
    std::unique_lock<std::mutex> d(dispatch_, std::try_to_lock);
    if (!d.owns_lock() || workers_.empty()) {  // busy with another caller's job, or serial
      inline_run(n, fn);
      return;
    }
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n = n;
    job->grain = grain;
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = job;
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    t_inside = true;
    work_on(*job);
    t_inside = false;
    // Wait only for chunks other threads claimed and are still running.
    for (int spins = 0; job->done.load(std::memory_order_acquire) < n; ++spins) {
      if (spins < 4096) cpu_relax();
      else std::this_thread::yield();
    }
    std::lock_guard<std::mutex> lk(m_);
    job_.reset();  // late workers find nothing; `job` itself stays alive while they hold it
  }

  static void inline_run(int64_t n, const Fn& fn) {
    const bool was = t_inside;
    t_inside = true;
    fn(0, n);
    t_inside = was;
  }

 private:
  Pool() {
    const int t = std::max(1, omp_get_max_threads());  // honours OMP_NUM_THREADS
    for (int i = 1; i < t; ++i) workers_.emplace_back([this] { worker_loop(); });
    threads_.store(t, std::memory_order_relaxed);
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_ = false;
  }

  void worker_loop() {
    t_inside = true;
    uint64_t seen = gen_.load(std::memory_order_acquire);
    while (true) {
      // Spin a little (jobs of one forward pass come back to back), then sleep.
      for (int i = 0; i < 2000 && gen_.load(std::memory_order_acquire) == seen; ++i) cpu_relax();
      std::shared_ptr<Job> j;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || gen_.load(std::memory_order_acquire) != seen; });
        if (stop_) return;
        seen = gen_.load(std::memory_order_acquire);
        j = job_;
      }
      if (j) work_on(*j);
    }
  }

  std::mutex dispatch_;  // one job at a time; guards workers_
  std::mutex m_;         // guards job_, stop_
  std::condition_variable cv_;
  std::shared_ptr<Job> job_;
  std::atomic<uint64_t> gen_{0};
  bool stop_ = false;
  std::vector<std::thread> workers_;
  std::atomic<int> threads_{1};  // workers_.size() + 1, readable without a lock
};

}  // namespace

void parallel_for(int64_t n, int64_t grain, const Fn& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n <= grain || t_inside) {
    Pool::inline_run(n, fn);
    return;
  }
  Pool::instance().run(n, grain, fn);
}

int64_t pick_grain(int64_t n, int64_t work_per_item, int64_t min_parallel_work, int64_t min_grain, int64_t align) {
  if (n <= 0) return 1;
  if (n * work_per_item < min_parallel_work) return n;
  const int64_t t = cpu_threads();
  if (t <= 1) return n;
  int64_t g = std::max<int64_t>(min_grain, (n + 4 * t - 1) / (4 * t));
  g = (g + align - 1) / align * align;
  return std::max<int64_t>(1, g);
}

namespace detail {
int pool_threads() { return Pool::instance().threads(); }
void pool_resize(int n) { Pool::instance().resize(n); }
}  // namespace detail

}  // namespace mlar::ops
