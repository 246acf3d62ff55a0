// vitslim_nccl_check: a standalone check of the NCCL communicator on GPUs, run alone or under
// `mpirun -np N`. Each rank fills a 1M-element float buffer from its rank, all-reduces it on
// the GPU (async, polled with test(), then wait()) and verifies every element; it also checks
// allreduce_max, broadcast and allgather on small buffers, then times the allreduce and prints
// the bus bandwidth (nccl-tests' definition). Without a CUDA device it prints
// "SKIP: no CUDA device" and exits 0. Not a ctest test: it needs GPUs.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/gpu_select.h"
#include "dist/mpi_session.h"
#include "dist/nccl_communicator.h"

namespace {

using vitslim::cat;
using vitslim::Error;
using vitslim::dist::DType;
using vitslim::dist::MpiSession;
using vitslim::dist::NcclCommunicator;

constexpr int64_t kElements = 1 << 20;  // floats in the allreduce buffer
constexpr int64_t kPattern = 7;         // element i of rank r holds (r + 1) * (1 + i % kPattern)
constexpr int kWarmupIterations = 5;
constexpr int kTimedIterations = 50;
constexpr int64_t kSmallElements = 16;  // max / broadcast / allgather buffers
constexpr double kBytesPerGigabyte = 1e9;
constexpr double kBytesPerMebibyte = 1 << 20;
constexpr double kMicrosecondsPerSecond = 1e6;
constexpr double kTimeoutSeconds = 120;  // the watchdog's limit for one collective

void check_cuda(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess) throw Error(cat(call, " failed: ", cudaGetErrorString(rc)));
}
#define CHECK_CUDA(call) check_cuda((call), #call)

struct DeviceFree {
  void operator()(void* p) const noexcept { cudaFree(p); }
};

// `count` elements of T on the current device, freed with the object.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(int64_t count) : count_(count) {
    void* p = nullptr;
    CHECK_CUDA(cudaMalloc(&p, static_cast<size_t>(count) * sizeof(T)));
    data_.reset(p);
  }
  T* get() const { return static_cast<T*>(data_.get()); }
  int64_t bytes() const { return count_ * static_cast<int64_t>(sizeof(T)); }
  void upload(const std::vector<T>& host) {
    CHECK_CUDA(cudaMemcpy(get(), host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(static_cast<size_t>(count_));
    CHECK_CUDA(cudaMemcpy(host.data(), get(), bytes(), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  int64_t count_;
  std::unique_ptr<void, DeviceFree> data_;
};

// Number of wrong elements after the float allreduce (async, polled, then waited on).
int64_t check_allreduce_sum(NcclCommunicator& comm) {
  const int n = comm.size();
  std::vector<float> host(static_cast<size_t>(kElements));
  for (int64_t i = 0; i < kElements; ++i) host[i] = static_cast<float>((comm.rank() + 1) * (1 + i % kPattern));
  DeviceBuffer<float> buffer(kElements);
  buffer.upload(host);
  auto work = comm.allreduce_sum_async(buffer.get(), kElements, DType::Float32);
  while (!work->test()) std::this_thread::yield();
  work->wait();
  host = buffer.download();  // legacy default stream: ordered after wait()
  const int64_t rank_sum = static_cast<int64_t>(n) * (n + 1) / 2;
  int64_t wrong = 0;
  for (int64_t i = 0; i < kElements; ++i) {
    if (host[i] != static_cast<float>(rank_sum * (1 + i % kPattern))) ++wrong;
  }
  return wrong;
}

// Number of wrong elements over allreduce_max, broadcast (from the last rank) and allgather.
int64_t check_sync_collectives(NcclCommunicator& comm) {
  const int n = comm.size(), rank = comm.rank();
  int64_t wrong = 0;

  DeviceBuffer<int64_t> small(kSmallElements);
  small.upload(std::vector<int64_t>(kSmallElements, rank));
  comm.allreduce_max(small.get(), kSmallElements, DType::Int64);
  for (int64_t v : small.download()) wrong += v != n - 1;

  const int root = n - 1;
  small.upload(std::vector<int64_t>(kSmallElements, rank == root ? -root : rank));
  comm.broadcast(small.get(), small.bytes(), root);
  for (int64_t v : small.download()) wrong += v != -root;

  DeviceBuffer<int64_t> mine(1), all(n);
  mine.upload({rank});
  comm.allgather(mine.get(), mine.bytes(), all.get());
  std::vector<int64_t> gathered = all.download();
  for (int r = 0; r < n; ++r) wrong += gathered[r] != r;
  return wrong;
}

// Seconds per allreduce of the kElements floats on this rank.
double time_allreduce(NcclCommunicator& comm, const MpiSession& mpi) {
  DeviceBuffer<float> buffer(kElements);
  CHECK_CUDA(cudaMemset(buffer.get(), 0, buffer.bytes()));  // zeros stay zeros however often summed
  for (int i = 0; i < kWarmupIterations; ++i) comm.allreduce_sum(buffer.get(), kElements, DType::Float32);
  CHECK_CUDA(cudaDeviceSynchronize());
  mpi.barrier();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kTimedIterations; ++i) comm.allreduce_sum(buffer.get(), kElements, DType::Float32);
  CHECK_CUDA(cudaDeviceSynchronize());
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / kTimedIterations;
}

int run(const MpiSession& mpi) {
  if (!vitslim::dist::cuda_device_available()) {
    if (mpi.rank() == 0) std::printf("SKIP: no CUDA device\n");
    return 0;
  }
  const int device = vitslim::dist::select_gpu(mpi);
  NcclCommunicator comm(
      mpi, device, [] { return static_cast<void*>(nullptr); }, vitslim::dist::CommOptions{kTimeoutSeconds});

  int64_t wrong_sum = check_allreduce_sum(comm);
  int64_t wrong_other = check_sync_collectives(comm);
  double seconds = time_allreduce(comm, mpi);
  long long failing_ranks = mpi.allreduce_sum((wrong_sum + wrong_other) > 0 ? 1 : 0);

  if (wrong_sum || wrong_other) {
    std::fprintf(stderr, "rank %d: %lld of %lld allreduce elements wrong, %lld wrong in max/broadcast/allgather\n",
                 comm.rank(), static_cast<long long>(wrong_sum), static_cast<long long>(kElements),
                 static_cast<long long>(wrong_other));
  }
  if (comm.rank() == 0) {
    const int n = comm.size();
    double bytes = static_cast<double>(kElements) * sizeof(float);
    double algbw = bytes / seconds / kBytesPerGigabyte;
    double busbw = algbw * 2.0 * (n - 1) / n;  // nccl-tests: allreduce moves 2(n-1)/n of the data
    std::printf("NCCL allreduce: %d rank(s), %lld floats (%.1f MiB), %.1f us, algbw %.2f GB/s, busbw %.2f GB/s\n", n,
                static_cast<long long>(kElements), bytes / kBytesPerMebibyte, seconds * kMicrosecondsPerSecond, algbw,
                busbw);
    std::printf("%s (%lld failing rank(s))\n", failing_ranks ? "FAIL" : "PASS", failing_ranks);
  }
  return failing_ranks ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<MpiSession> mpi;
  try {
    mpi = std::make_unique<MpiSession>(&argc, &argv);
    return run(*mpi);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitslim_nccl_check: error: %s\n", e.what());
    if (mpi && mpi->active() && mpi->world_size() > 1) mpi->abort(1);
    return 1;
  }
}
