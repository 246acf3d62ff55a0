// Implements the CUDA device helpers (see cuda_device.h). The CUDA half compiles only against a
// CUDA build of LibTorch (VITSLIM_TORCH_CUDA); the CPU half reports no device.
#include "core/cuda_device.h"

#include "core/error.h"

#if defined(VITSLIM_TORCH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace vitslim::cuda {

at::Tensor to_device(const at::Tensor& t, c10::Device device) {
  if (!device.is_cuda()) return t.device() == device ? t : t.to(device);
  return copy_to_device(t, device.index());
}

#if defined(VITSLIM_TORCH_CUDA)

namespace {
constexpr size_t kAggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);

c10::DeviceIndex checked(int index) {
  const int count = device_count();
  if (index < 0 || index >= count) throw Error(cat("CUDA device ", index, " requested; ", count, " visible"));
  return static_cast<c10::DeviceIndex>(index);
}
}  // namespace

bool built_with_cuda() { return true; }

int device_count() { return static_cast<int>(c10::cuda::device_count()); }

void set_device(int index) { c10::cuda::set_device(checked(index)); }

void reset_peak_memory(int index) { c10::cuda::CUDACachingAllocator::resetPeakStats(checked(index)); }

int64_t allocated_memory_bytes(int index) {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(checked(index)).allocated_bytes[kAggregate].current;
}

int64_t peak_memory_bytes(int index) {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(checked(index)).allocated_bytes[kAggregate].peak;
}

void synchronize(int index) {
  const c10::cuda::CUDAGuard guard(checked(index));
  c10::cuda::device_synchronize();
}

at::Tensor copy_to_device(const at::Tensor& host, int device) {
  const c10::DeviceIndex index = checked(device);
  const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(index);
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
  at::Tensor out;
  {
    c10::cuda::CUDAStreamGuard guard(side);
    const at::Tensor pinned = host.is_pinned() ? host : host.pin_memory();
    out = pinned.to(c10::Device(c10::kCUDA, index), /*non_blocking=*/true);
  }
  c10::cuda::CUDAEvent copied;
  copied.record(side);
  copied.block(compute);
  out.record_stream(compute);
  return out;
}

#else

namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw Error(cat(what, ": this build of vitslim links a CPU LibTorch (no CUDA)"));
}
}  // namespace

bool built_with_cuda() { return false; }
int device_count() { return 0; }
void set_device(int) { no_cuda("selecting a CUDA device"); }
void reset_peak_memory(int) { no_cuda("CUDA memory statistics"); }
int64_t allocated_memory_bytes(int) { no_cuda("CUDA memory statistics"); }
int64_t peak_memory_bytes(int) { no_cuda("CUDA memory statistics"); }
void synchronize(int) { no_cuda("CUDA synchronize"); }
at::Tensor copy_to_device(const at::Tensor&, int) { no_cuda("copying to a CUDA device"); }

#endif

}  // namespace vitslim::cuda
