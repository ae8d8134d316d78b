// Threading policy of the CPU ops.
//
// The ops share work through ops/parallel.h (a small pool: the caller plus
// cpu_threads() - 1 workers) and call OpenBLAS from inside those workers, each on
// its own slice. OpenBLAS therefore runs single-threaded: two thread pools spinning
// on the same few cores would oversubscribe them. `init_cpu_threads` makes that
// setting; every op that calls BLAS calls it first (once per process, cheap after).
// The default thread count is omp_get_max_threads(), so OMP_NUM_THREADS sets it.
#pragma once

namespace mlar::ops {

// Sets OpenBLAS to one thread (once). Idempotent and thread-safe.
void init_cpu_threads();

// Threads the ops use (the caller included).
int cpu_threads();

// Sets the thread count for later ops (n <= 0: leave as is). Call it between ops,
// not while another thread is running them.
void set_cpu_threads(int n);

// Sets OpenBLAS's own thread count, for code that calls LAPACK/BLAS directly on big
// problems outside the ops (SVD, PCA). The ops restore 1 before their next BLAS call.
void set_blas_threads(int n);

}  // namespace mlar::ops
