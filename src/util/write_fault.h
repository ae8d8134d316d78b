// Fault injection for tests: makes the streaming writers' low-level writes
// (util/stream_file.h: OutFd::write and copy_file_data) fail with ENOSPC once a
// given number of bytes has been written in this process. Off unless armed by
// set_write_fault_after_bytes() or, at the first write, by the environment
// variable MLAR_FAULT_WRITE_AFTER_BYTES=N (so the CLI can be tested too).
#pragma once
#include <cstddef>
#include <cstdint>

namespace mlar {

// Arms the fault: writes succeed until `n` bytes in all have gone through the
// hooked writes (counted from this call), then every write fails with ENOSPC.
// n < 0 disarms it.
void set_write_fault_after_bytes(int64_t n);

// How many of the next `want` bytes may still be written (`want` when disarmed).
// Counts them as written; 0 means the write must fail with ENOSPC.
size_t write_fault_allow(size_t want);

}  // namespace mlar
