// Implements the NCCL communicator backend (see nccl_communicator.h). Every CUDA, NCCL and MPI
// call is checked and a failure is thrown as vitslim::Error naming the call, host and rank.
// Handles are owned RAII-style: the NCCL communicator is destroyed, or aborted once an error was
// seen, before its stream and events; destructors never throw.
#include "dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "dist/mpi_session.h"
#include "dist/watchdog.h"

namespace vitslim::dist {
namespace {

constexpr size_t kHostNameBytes = 256;
constexpr int kRootRank = 0;                  // creates the NCCL unique id
constexpr double kWatchdogPollSeconds = 0.1;  // as ProcessGroupNCCL's watchdog
constexpr double kMillisecondsPerSecond = 1e3;

std::string host_name() {
  char host[kHostNameBytes] = "?";
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::string where(int rank) { return cat(" failed on ", host_name(), " rank ", rank, ": "); }

void check_cuda(cudaError_t rc, const char* call, int rank) {
  if (rc == cudaSuccess) return;
  throw Error(cat(call, where(rank), cudaGetErrorName(rc), " (", cudaGetErrorString(rc), ")"));
}

void check_nccl(ncclResult_t rc, const char* call, int rank, ncclComm_t comm) {
  if (rc == ncclSuccess) return;
  std::string detail;
  const char* last = ncclGetLastError(comm);
  if (last && *last) detail = cat(" (", last, ")");
  throw Error(cat(call, where(rank), ncclGetErrorString(rc), detail));
}

struct StreamDeleter {
  void operator()(cudaStream_t stream) const noexcept { cudaStreamDestroy(stream); }
};
using StreamHandle = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDeleter>;

struct EventDeleter {
  void operator()(cudaEvent_t event) const noexcept { cudaEventDestroy(event); }
};
using EventHandle = std::unique_ptr<std::remove_pointer_t<cudaEvent_t>, EventDeleter>;

// Events only order streams and report completion: no timing, which makes them cheaper.
EventHandle make_event(int rank, unsigned flags = cudaEventDisableTiming) {
  cudaEvent_t event = nullptr;
  check_cuda(cudaEventCreateWithFlags(&event, flags), "cudaEventCreateWithFlags", rank);
  return EventHandle(event);
}

cudaStream_t as_stream(void* stream) { return stream ? static_cast<cudaStream_t>(stream) : cudaStreamLegacy; }

// Makes `device` current on this thread for the guard's lifetime, then restores the previous one.
class DeviceGuard {
 public:
  DeviceGuard(int device, int rank) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice", rank);
    if (previous_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice", rank);
  }
  ~DeviceGuard() { (void)cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// The NCCL communicator: destroyed normally (which completes its queued work), or aborted when
// this process saw an error or NCCL reports an asynchronous one, so that no peer is waited on.
class CommHandle {
 public:
  CommHandle() = default;
  ~CommHandle() {
    if (!comm_) return;
    ncclResult_t async_error = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &async_error) != ncclSuccess) failed_ = true;
    if (failed_ || async_error != ncclSuccess) {
      ncclCommAbort(comm_);
    } else {
      ncclCommDestroy(comm_);
    }
  }
  CommHandle(const CommHandle&) = delete;
  CommHandle& operator=(const CommHandle&) = delete;

  ncclComm_t get() const { return comm_; }
  ncclComm_t* out() { return &comm_; }
  void mark_failed() { failed_ = true; }

 private:
  ncclComm_t comm_ = nullptr;
  bool failed_ = false;
};

ncclDataType_t to_nccl(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return ncclFloat32;
    case DType::Float64:
      return ncclFloat64;
    case DType::Int64:
      return ncclInt64;
  }
  throw Error(cat("NCCL communicator: unknown DType ", static_cast<int>(dtype)));
}

size_t checked_count(int64_t count, const char* what, int rank) {
  if (count < 0) throw Error(cat("NCCL communicator ", what, " on rank ", rank, ": negative size ", count));
  return static_cast<size_t>(count);
}

// allreduce_sum_async's result: the completion event recorded on the communication stream.
class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<void> done, NcclCommunicator::CurrentStream current, int device, int rank)
      : done_(std::move(done)), current_(std::move(current)), device_(device), rank_(rank) {}

  // Orders the waiting thread's compute stream after the collective; the host does not block.
  void wait() override {
    const DeviceGuard guard(device_, rank_);
    check_cuda(cudaStreamWaitEvent(as_stream(current_()), event(), 0), "cudaStreamWaitEvent", rank_);
  }

  bool test() override {
    cudaError_t rc = cudaEventQuery(event());
    if (rc == cudaErrorNotReady) {
      (void)cudaGetLastError();  // "not ready" is a state, not an error to leave behind
      return false;
    }
    check_cuda(rc, "cudaEventQuery", rank_);
    return true;
  }

 private:
  cudaEvent_t event() const { return static_cast<cudaEvent_t>(done_.get()); }

  std::shared_ptr<void> done_;  // cudaEvent_t, shared with the watchdog
  NcclCommunicator::CurrentStream current_;
  int device_;
  int rank_;
};

// Two timing events on the compute stream around the waits.
class StreamWaitTimer : public WaitTimer {
 public:
  StreamWaitTimer(NcclCommunicator::CurrentStream current, int device, int rank)
      : current_(std::move(current)), device_(device), rank_(rank) {
    const DeviceGuard guard(device_, rank_);
    start_ = make_event(rank_, cudaEventDefault);
    stop_ = make_event(rank_, cudaEventDefault);
    check_cuda(cudaEventRecord(start_.get(), as_stream(current_())), "cudaEventRecord", rank_);
  }
  void stop() override {
    const DeviceGuard guard(device_, rank_);
    check_cuda(cudaEventRecord(stop_.get(), as_stream(current_())), "cudaEventRecord", rank_);
  }
  double seconds() override {
    float ms = 0;
    check_cuda(cudaEventSynchronize(stop_.get()), "cudaEventSynchronize", rank_);
    check_cuda(cudaEventElapsedTime(&ms, start_.get(), stop_.get()), "cudaEventElapsedTime", rank_);
    return static_cast<double>(ms) / kMillisecondsPerSecond;
  }

 private:
  NcclCommunicator::CurrentStream current_;
  int device_, rank_;
  EventHandle start_, stop_;
};

// A collective on zero elements: nothing to wait for.
class DoneWork : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};

bool any_other_rank_failed(bool local_ok, int rank) {
  int all_ok = local_ok ? 1 : 0;
  check_mpi_call(MPI_Allreduce(MPI_IN_PLACE, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce", rank);
  return all_ok == 0;
}

}  // namespace

// Declared in this order so that the watchdog stops first, then the communicator goes, then the
// events and the stream.
struct NcclCommunicator::State {
  CurrentStream current;  // the calling thread's compute stream
  StreamHandle comm_stream;
  EventHandle compute_ready;  // recorded on the compute stream, waited on by the comm stream
  CommHandle comm;
  std::unique_ptr<Watchdog> watchdog;  // none without a timeout
};

// Checks a call inside NcclCommunicator; a failure also marks the NCCL communicator for abort.
#define VITSLIM_CUDA(call)           \
  do {                               \
    cudaError_t rc_ = (call);        \
    if (rc_ != cudaSuccess) {        \
      state_->comm.mark_failed();    \
      check_cuda(rc_, #call, rank_); \
    }                                \
  } while (false)

#define VITSLIM_NCCL(call)                               \
  do {                                                   \
    ncclResult_t rc_ = (call);                           \
    if (rc_ != ncclSuccess) {                            \
      state_->comm.mark_failed();                        \
      check_nccl(rc_, #call, rank_, state_->comm.get()); \
    }                                                    \
  } while (false)

bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver / no device: clear it, it is an answer here
    return false;
  }
  return count > 0;
}

namespace {

// The host never waits on NCCL kernels, so a hung peer shows only here. Aborting the NCCL
// communicator releases the kernels; MPI_Abort then ends every rank of the job (from this thread:
// Open MPI's abort needs no progress from the thread that may sit in an MPI call), so no rank
// outlives a dead peer whatever the launcher's policy. `mpi` outlives the communicator.
std::unique_ptr<Watchdog> abort_watchdog(ncclComm_t comm, int rank, const CommOptions& options, const MpiSession& mpi) {
  const double timeout = options.timeout_seconds;
  const MpiSession* session = &mpi;
  return std::make_unique<Watchdog>(
      timeout,
      [comm, rank, timeout, session](const std::string& what, double seconds) {
        std::fprintf(stderr,
                     "vitslim: error (rank %d): NCCL watchdog: %s on %s did not complete within "
                     "--collective-timeout %g s (%.0f s): a peer is stuck or gone; aborting\n",
                     rank, what.c_str(), host_name().c_str(), timeout, seconds);
        std::fflush(stderr);
        ncclCommAbort(comm);
        session->abort(EXIT_FAILURE);
      },
      kWatchdogPollSeconds);
}

}  // namespace

NcclCommunicator::NcclCommunicator(const MpiSession& mpi, int device, CurrentStream current_stream,
                                   const CommOptions& options)
    : rank_(mpi.rank()), size_(mpi.world_size()), device_(device), state_(std::make_unique<State>()) {
  state_->current = std::move(current_stream);

  // Local set-up first; then every rank learns whether all succeeded, so that a failure on one
  // rank is an error on all of them instead of a hang in the NCCL initialisation.
  ncclUniqueId id{};
  std::exception_ptr local_failure;
  try {
    int devices = 0;
    VITSLIM_CUDA(cudaGetDeviceCount(&devices));
    if (device < 0 || device >= devices) {
      throw Error(cat("NCCL communicator: CUDA device ", device, " requested on ", host_name(), " rank ", rank_,
                      ", which has ", devices, " device(s)"));
    }
    VITSLIM_CUDA(cudaSetDevice(device));
    cudaStream_t stream = nullptr;
    VITSLIM_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    state_->comm_stream.reset(stream);
    state_->compute_ready = make_event(rank_);
    if (rank_ == kRootRank) VITSLIM_NCCL(ncclGetUniqueId(&id));
  } catch (...) {
    local_failure = std::current_exception();
  }
  if (size_ > 1) {
    bool others_failed = any_other_rank_failed(!local_failure, rank_);
    if (local_failure) std::rethrow_exception(local_failure);
    if (others_failed) {
      throw Error(cat("NCCL communicator: another rank failed to set up CUDA/NCCL (see its error); ", host_name(),
                      " rank ", rank_, " stops too"));
    }
    check_mpi_call(MPI_Bcast(&id, static_cast<int>(sizeof(id)), MPI_BYTE, kRootRank, MPI_COMM_WORLD), "MPI_Bcast",
                   rank_);
  } else if (local_failure) {
    std::rethrow_exception(local_failure);
  }
  VITSLIM_NCCL(ncclCommInitRank(state_->comm.out(), size_, id, rank_));
  if (options.timeout_seconds > 0) state_->watchdog = abort_watchdog(state_->comm.get(), rank_, options, mpi);
}

NcclCommunicator::~NcclCommunicator() = default;

void NcclCommunicator::order_after_compute(void* compute) {
  VITSLIM_CUDA(cudaEventRecord(state_->compute_ready.get(), as_stream(compute)));
  VITSLIM_CUDA(cudaStreamWaitEvent(state_->comm_stream.get(), state_->compute_ready.get(), 0));
}

std::shared_ptr<void> NcclCommunicator::watch(const std::string& what) {
  EventHandle handle = make_event(rank_);
  VITSLIM_CUDA(cudaEventRecord(handle.get(), state_->comm_stream.get()));
  std::shared_ptr<void> done(handle.release(), [](void* e) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); });
  if (state_->watchdog) {
    const int device = device_;
    state_->watchdog->watch(cat(what, context().empty() ? std::string() : cat(" at ", context())), [done, device] {
      (void)cudaSetDevice(device);
      const cudaError_t rc = cudaEventQuery(static_cast<cudaEvent_t>(done.get()));
      (void)cudaGetLastError();
      return rc != cudaErrorNotReady;
    });
  }
  return done;
}

std::unique_ptr<WaitTimer> NcclCommunicator::start_wait_timer() {
  return std::make_unique<StreamWaitTimer>(state_->current, device_, rank_);
}

// Polls rather than cudaStreamSynchronize: a peer that died leaves NCCL kernels spinning
// forever, and only ncclCommGetAsyncError reports it (as nccl-tests does).
void NcclCommunicator::finish_sync() {
  for (;;) {
    cudaError_t rc = cudaStreamQuery(state_->comm_stream.get());
    if (rc == cudaSuccess) return;
    if (rc != cudaErrorNotReady) {
      state_->comm.mark_failed();
      check_cuda(rc, "cudaStreamQuery(communication stream)", rank_);
    }
    (void)cudaGetLastError();  // "not ready" is a state, not an error to leave behind
    ncclResult_t async_error = ncclSuccess;
    VITSLIM_NCCL(ncclCommGetAsyncError(state_->comm.get(), &async_error));
    if (async_error != ncclSuccess) {
      state_->comm.mark_failed();
      check_nccl(async_error, "NCCL collective (ncclCommGetAsyncError)", rank_, state_->comm.get());
    }
    std::this_thread::yield();
  }
}

std::unique_ptr<Work> NcclCommunicator::allreduce_sum_async(void* data, int64_t count, DType dtype) {
  size_t n = checked_count(count, "allreduce_sum", rank_);
  if (n == 0) return std::make_unique<DoneWork>();
  const DeviceGuard guard(device_, rank_);
  order_after_compute(state_->current());
  VITSLIM_NCCL(ncclAllReduce(data, data, n, to_nccl(dtype), ncclSum, state_->comm.get(), state_->comm_stream.get()));
  auto done = watch(cat("all-reduce of ", n * dtype_size(dtype), " bytes"));
  return std::make_unique<NcclWork>(std::move(done), state_->current, device_, rank_);
}

void NcclCommunicator::allreduce_max(void* data, int64_t count, DType dtype) {
  size_t n = checked_count(count, "allreduce_max", rank_);
  if (n == 0) return;
  const DeviceGuard guard(device_, rank_);
  order_after_compute(state_->current());
  VITSLIM_NCCL(ncclAllReduce(data, data, n, to_nccl(dtype), ncclMax, state_->comm.get(), state_->comm_stream.get()));
  watch("all-reduce (max)");
  finish_sync();
}

void NcclCommunicator::broadcast(void* data, int64_t bytes, int root) {
  size_t n = checked_count(bytes, "broadcast", rank_);
  if (root < 0 || root >= size_) {
    throw Error(cat("NCCL communicator broadcast on rank ", rank_, ": root ", root, " outside 0..", size_ - 1));
  }
  if (n == 0) return;
  const DeviceGuard guard(device_, rank_);
  order_after_compute(state_->current());
  VITSLIM_NCCL(ncclBroadcast(data, data, n, ncclUint8, root, state_->comm.get(), state_->comm_stream.get()));
  watch(cat("broadcast of ", n, " bytes"));
  finish_sync();
}

void NcclCommunicator::allgather(const void* data, int64_t bytes, void* out) {
  size_t n = checked_count(bytes, "allgather", rank_);
  if (n == 0) return;
  const DeviceGuard guard(device_, rank_);
  order_after_compute(state_->current());
  VITSLIM_NCCL(ncclAllGather(data, out, n, ncclUint8, state_->comm.get(), state_->comm_stream.get()));
  watch(cat("all-gather of ", n, " bytes"));
  finish_sync();
}

#undef VITSLIM_CUDA
#undef VITSLIM_NCCL

}  // namespace vitslim::dist
