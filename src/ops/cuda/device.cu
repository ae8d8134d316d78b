#include "ops/cuda/device.h"

#include <algorithm>

#include "ops/cuda/cuda_check.h"

namespace mlar::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

void require_device(const std::string& context) {
  if (device_count() == 0)
    fail("{}: no CUDA device is visible (this build has the CUDA backend; run it on a machine with an NVIDIA GPU)",
         context);
}

DeviceInfo device_info() {
  require_device("device_info");
  int dev = 0;
  MLAR_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  MLAR_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  DeviceInfo info;
  info.name = p.name;
  info.cc_major = p.major;
  info.cc_minor = p.minor;
  info.sm_count = p.multiProcessorCount;
  info.total_bytes = p.totalGlobalMem;
  info.l2_bytes = static_cast<size_t>(p.l2CacheSize);
  MLAR_CUDA_CHECK(cudaDriverGetVersion(&info.driver_version));
  MLAR_CUDA_CHECK(cudaRuntimeGetVersion(&info.runtime_version));
  return info;
}

DeviceBuffer::DeviceBuffer(size_t bytes) { reserve(bytes); }

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_ && ptr_) return;
  if (ptr_) {
    MLAR_CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    bytes_ = 0;
  }
  if (bytes == 0) return;
  cudaError_t e = cudaMalloc(&ptr_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    ptr_ = nullptr;
    fail("CUDA: cannot allocate {} bytes of device memory: {}", bytes, cudaGetErrorString(e));
  }
  bytes_ = bytes;
}

void upload(void* dst, const void* src, size_t bytes) {
  if (bytes) MLAR_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void download(void* dst, const void* src, size_t bytes) {
  if (bytes) MLAR_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void copy_device(void* dst, const void* src, size_t bytes) {
  if (bytes) MLAR_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
}
void fill_zero(void* dst, size_t bytes) {
  if (bytes) MLAR_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, 0));
}
void synchronize() { MLAR_CUDA_CHECK(cudaDeviceSynchronize()); }
void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail("CUDA: launch of {} failed: {}", what, cudaGetErrorString(e));
}

EventTimer::EventTimer() {
  cudaEvent_t a, b;
  MLAR_CUDA_CHECK(cudaEventCreate(&a));
  MLAR_CUDA_CHECK(cudaEventCreate(&b));
  start_ = a;
  stop_ = b;
}
EventTimer::~EventTimer() {
  cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}
void EventTimer::start() { MLAR_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(start_), 0)); }
double EventTimer::stop_ms() {
  MLAR_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(stop_), 0));
  MLAR_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)));
  float ms = 0;
  MLAR_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)));
  return ms;
}

double copy_bandwidth_gbs(size_t bytes, int reps) {
  DeviceBuffer a(bytes), b(bytes);
  fill_zero(a.data(), bytes);
  copy_device(b.data(), a.data(), bytes);  // warm-up
  EventTimer t;
  double best_ms = 1e30;
  for (int i = 0; i < std::max(1, reps); ++i) {
    t.start();
    copy_device(b.data(), a.data(), bytes);
    best_ms = std::min(best_ms, t.stop_ms());
  }
  return 2.0 * static_cast<double>(bytes) / (best_ms * 1e-3) / 1e9;
}

}  // namespace mlar::cuda
