// Implements the counting CPU allocator (see cpu_memory.h).
#include "core/cpu_memory.h"

#include <malloc.h>
#include <unistd.h>

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>

namespace vitslim {
namespace {

std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};

// Each block carries its size in a header of kHeader bytes before the data, so that the data
// pointer is its own context (LibTorch's raw_allocate/raw_deleter require that).
constexpr size_t kHeader = 64;  // keeps the 64-byte alignment of alloc_cpu

void release(void* data) {
  if (!data) return;
  auto* base = static_cast<char*>(data) - kHeader;
  int64_t bytes = 0;
  std::memcpy(&bytes, base, sizeof(bytes));
  g_live -= bytes;
  c10::free_cpu(base);
}

class CountingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    auto* base = static_cast<char*>(c10::alloc_cpu(n + kHeader));
    const auto bytes = static_cast<int64_t>(n);
    std::memcpy(base, &bytes, sizeof(bytes));
    void* data = base + kHeader;
    const int64_t live = g_live += bytes;
    int64_t peak = g_peak.load();
    while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
    }
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
};

}  // namespace

void install_cpu_memory_tracker() {
  static CountingAllocator allocator;
  static bool installed = false;
  if (installed) return;
  constexpr uint8_t kPriority = 100;  // above LibTorch's default
  c10::SetCPUAllocator(&allocator, kPriority);
  installed = true;
}

int64_t cpu_tensor_bytes() { return g_live.load(); }
int64_t cpu_tensor_peak_bytes() { return g_peak.load(); }
void reset_cpu_tensor_peak() { g_peak = g_live.load(); }

namespace {
double status_mib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size())) / 1024.0;  // "  1234 kB"
  }
  return -1;
}
}  // namespace

double resident_mib() { return status_mib("VmRSS"); }
double peak_resident_mib() { return status_mib("VmHWM"); }

double physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

void tune_malloc_for_images() {
#if defined(__GLIBC__)
  constexpr int kMmapThreshold = 32 << 20;
  constexpr int kTrimThreshold = 128 << 20;
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
#endif
}

}  // namespace vitslim
