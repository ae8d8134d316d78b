// Work sharing for the CPU ops on a small, possibly shared machine.
//
// parallel_for splits [0, n) into chunks of `grain` that the calling thread and
// (cpu_threads() - 1) pool workers claim from a shared counter. The caller works
// too and waits only for chunks another thread has already claimed, never for a
// worker that has not woken up: on a machine busy with other processes it simply
// does the chunks itself, instead of stalling in a fork-join barrier (an OpenMP
// parallel region waits for every team thread, which on 2 oversubscribed cores cost
// 5-8x in measurements). Workers spin briefly after a job, then sleep.
#pragma once
#include <cstdint>
#include <functional>

namespace mlar::ops {

// Calls fn(begin, end) for consecutive ranges of at most `grain` (>= 1) items
// covering [0, n), possibly on several threads at once, and returns when all are
// done. Runs fn(0, n) inline when n <= grain, when there is one thread, or when
// called from inside another parallel_for. fn must not throw.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// A grain for n items of `work_per_item` scalar operations each: the whole range
// (serial) when the total is below `min_parallel_work`, else about 4 chunks per
// thread, at least `min_grain` items each, rounded up to a multiple of `align`.
int64_t pick_grain(int64_t n, int64_t work_per_item, int64_t min_parallel_work = 1 << 17, int64_t min_grain = 1,
                   int64_t align = 1);

}  // namespace mlar::ops
