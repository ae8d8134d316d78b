#include "ops/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "ops/threads.h"

namespace mlar {
namespace {

void expect_each_item_once(int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  const bool serial = ops::cpu_threads() == 1 || n <= grain;  // then one inline call over [0, n)
  ops::parallel_for(n, grain, [&](int64_t b, int64_t e) {
    if (serial) {
      EXPECT_EQ(b, 0);
      EXPECT_EQ(e, n);
    } else {
      EXPECT_LE(e - b, grain);
    }
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n " << n << " grain " << grain;
}

TEST(ParallelFor, CoversEveryItemOnceForAnyThreadCount) {
  const int saved = ops::cpu_threads();
  for (int threads : {1, 2, 3}) {
    ops::set_cpu_threads(threads);
    EXPECT_EQ(ops::cpu_threads(), threads);
    for (int64_t n : {1, 7, 64, 1000})
      for (int64_t grain : {1, 3, 64, 5000}) expect_each_item_once(n, grain);
  }
  ops::set_cpu_threads(saved);
}

TEST(ParallelFor, NestedCallsRunInline) {
  std::atomic<int64_t> total{0};
  ops::parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      ops::parallel_for(10, 1, [&](int64_t b2, int64_t e2) {
        EXPECT_EQ(b2, 0);  // inline: one call over the whole range
        EXPECT_EQ(e2, 10);
        total.fetch_add(e2 - b2);
      });
  });
  EXPECT_EQ(total.load(), 80);
}

TEST(ParallelFor, ConcurrentCallersEachGetTheirWorkDone) {
  std::atomic<int64_t> a{0}, b{0};
  auto run = [](std::atomic<int64_t>& sum) {
    for (int rep = 0; rep < 200; ++rep)
      ops::parallel_for(100, 7, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) sum.fetch_add(i);
      });
  };
  std::thread t1(run, std::ref(a)), t2(run, std::ref(b));
  t1.join();
  t2.join();
  EXPECT_EQ(a.load(), 200 * 4950);
  EXPECT_EQ(b.load(), 200 * 4950);
}

TEST(PickGrain, SerialBelowThresholdElseAligned) {
  EXPECT_EQ(ops::pick_grain(100, 10, 1 << 17), 100);
  const int saved = ops::cpu_threads();
  ops::set_cpu_threads(2);
  const int64_t g = ops::pick_grain(1024, 1 << 12, 1 << 17, 32, 16);
  EXPECT_EQ(g % 16, 0);
  EXPECT_GE(g, 32);
  EXPECT_LT(g, 1024);
  ops::set_cpu_threads(1);
  EXPECT_EQ(ops::pick_grain(1024, 1 << 12, 1 << 17), 1024);
  ops::set_cpu_threads(saved);
}

}  // namespace
}  // namespace mlar
