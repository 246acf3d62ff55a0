// Implements the CUDA device helpers (see cuda_device.h). The CUDA half compiles only against a
// CUDA build of LibTorch (VITSLIM_TORCH_CUDA); the CPU half reports no device.
#include "core/cuda_device.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <cstdlib>

#include "core/error.h"

#if defined(VITSLIM_TORCH_CUDA)
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <map>
#include <mutex>
#endif

namespace vitslim::cuda {

at::Tensor to_device(const at::Tensor& t, c10::Device device) {
  if (!device.is_cuda()) return t.device() == device ? t : t.to(device);
  return copy_to_device(t, device.index());
}

std::string cuda_unavailable_reason(bool built, int visible, const char* visible_env) {
  if (!built) {
    return "--device cuda: this vitslim is built against a CPU LibTorch (no CUDA); build it against a CUDA LibTorch "
           "(docs/jobs.md, GPUs) or use --device cpu";
  }
  if (visible > 0) return "";
  if (visible_env != nullptr && *visible_env == '\0') {
    return "--device cuda: CUDA_VISIBLE_DEVICES is set and empty, so no GPU is visible to this process";
  }
  return cat("--device cuda: no CUDA device is visible (",
             visible_env ? cat("CUDA_VISIBLE_DEVICES=", visible_env) : std::string("CUDA_VISIBLE_DEVICES unset"),
             "; no GPU, or no NVIDIA driver)");
}

Device resolve_device(Device requested) {
  if (requested == Device::Cpu) return Device::Cpu;
  const bool built = built_with_cuda();
  const int visible = built ? device_count() : 0;
  if (requested == Device::Auto) return visible > 0 ? Device::Cuda : Device::Cpu;
  const std::string why = cuda_unavailable_reason(built, visible, std::getenv("CUDA_VISIBLE_DEVICES"));
  if (!why.empty()) throw Error(why);
  return Device::Cuda;
}

void set_tf32(bool on) {
  if (!built_with_cuda()) return;
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

#if defined(VITSLIM_TORCH_CUDA)

namespace {
constexpr size_t kAggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);

c10::DeviceIndex checked(int index) {
  const int count = device_count();
  if (index < 0 || index >= count) throw Error(cat("CUDA device ", index, " requested; ", count, " visible"));
  return static_cast<c10::DeviceIndex>(index);
}

// One copy stream per device for the life of the process: the caching allocator reuses a block
// only on the stream it was allocated on, so a new pool stream per copy would park a batch buffer
// on each of the pool's streams.
c10::cuda::CUDAStream copy_stream(c10::DeviceIndex index) {
  static std::mutex mutex;
  static std::map<c10::DeviceIndex, c10::cuda::CUDAStream> streams;
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = streams.find(index);
  if (it == streams.end()) {
    it = streams.emplace(index, c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index)).first;
  }
  return it->second;
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
  const c10::cuda::CUDAStream side = copy_stream(index);
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

at::Generator make_generator(c10::Device device, uint64_t seed) {
  if (!device.is_cuda()) return at::detail::createCPUGenerator(seed);
  at::Generator generator = at::cuda::detail::createCUDAGenerator(checked(device.index() < 0 ? 0 : device.index()));
  generator.set_current_seed(seed);
  return generator;
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
at::Generator make_generator(c10::Device device, uint64_t seed) {
  if (device.is_cuda()) no_cuda("a random generator on a CUDA device");
  return at::detail::createCPUGenerator(seed);
}

#endif

}  // namespace vitslim::cuda
