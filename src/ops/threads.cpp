#include "ops/threads.h"

#include <cblas.h>

#include <atomic>

namespace mlar::ops {
namespace detail {
int pool_threads();
void pool_resize(int n);
}  // namespace detail

namespace {
std::atomic<bool> g_blas_single{false};
}

void init_cpu_threads() {
  if (g_blas_single.load(std::memory_order_acquire)) return;
  openblas_set_num_threads(1);
  g_blas_single.store(true, std::memory_order_release);
}

int cpu_threads() { return detail::pool_threads(); }

void set_cpu_threads(int n) {
  if (n > 0 && n != detail::pool_threads()) detail::pool_resize(n);
}

void set_blas_threads(int n) {
  if (n <= 0) return;
  openblas_set_num_threads(n);
  g_blas_single.store(n == 1, std::memory_order_release);
}

}  // namespace mlar::ops
