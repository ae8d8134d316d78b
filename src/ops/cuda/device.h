// Device memory and timing for the CUDA backend (plain C++: callers need no CUDA
// headers). Every pointer an ops/cuda function takes is a device pointer made here.
// One device (the current one, 0 unless CUDA_VISIBLE_DEVICES says otherwise), the
// default stream; errors throw mlar::Error naming the CUDA call and its message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mlar::cuda {

// Number of CUDA devices visible (0 when there is no driver or no device).
int device_count();
// Throws mlar::Error "<context>: no CUDA device ..." when device_count() == 0.
void require_device(const std::string& context);

struct DeviceInfo {
  std::string name;         // "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t total_bytes = 0;   // global memory
  size_t l2_bytes = 0;
  int driver_version = 0;   // e.g. 13000
  int runtime_version = 0;
};
DeviceInfo device_info();

// Owned device memory (cudaMalloc / cudaFree), move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }
  // Grows (contents lost) when smaller than `bytes`.
  void reserve(size_t bytes);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Host <-> device copies (synchronous) and device <-> device (asynchronous, stream order).
void upload(void* dst_device, const void* src_host, size_t bytes);
void download(void* dst_host, const void* src_device, size_t bytes);
void copy_device(void* dst_device, const void* src_device, size_t bytes);
void fill_zero(void* dst_device, size_t bytes);
// Waits for every queued kernel; rethrows a kernel's asynchronous error.
void synchronize();
// Throws if the last launch failed (cudaGetLastError), naming `what`.
void check_launch(const char* what);

// Elapsed device time between two points of the stream (CUDA events).
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start();
  // Milliseconds since start(); waits for the stream to reach this point.
  double stop_ms();

 private:
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

// Device-to-device copy bandwidth in GB/s (1e9), counting bytes read plus bytes
// written, the best of `reps` copies of `bytes` bytes: the bound a kernel that reads
// memory once is compared against.
double copy_bandwidth_gbs(size_t bytes, int reps);

}  // namespace mlar::cuda
