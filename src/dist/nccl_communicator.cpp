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
#include <exception>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "dist/mpi_session.h"

namespace vitslim::dist {
namespace {

constexpr size_t kHostNameBytes = 256;
constexpr int kRootRank = 0;  // creates the NCCL unique id

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
EventHandle make_event(int rank) {
  cudaEvent_t event = nullptr;
  check_cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags", rank);
  return EventHandle(event);
}

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
  NcclWork(EventHandle done, cudaStream_t compute, int rank) : done_(std::move(done)), compute_(compute), rank_(rank) {}

  // Orders the compute stream after the collective; the host does not block.
  void wait() override { check_cuda(cudaStreamWaitEvent(compute_, done_.get(), 0), "cudaStreamWaitEvent", rank_); }

  bool test() override {
    cudaError_t rc = cudaEventQuery(done_.get());
    if (rc == cudaErrorNotReady) {
      (void)cudaGetLastError();  // "not ready" is a state, not an error to leave behind
      return false;
    }
    check_cuda(rc, "cudaEventQuery", rank_);
    return true;
  }

 private:
  EventHandle done_;
  cudaStream_t compute_;
  int rank_;
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

// Declared in this order so that the communicator goes first, then the events and the stream.
struct NcclCommunicator::State {
  cudaStream_t compute = nullptr;  // not owned
  StreamHandle comm_stream;
  EventHandle compute_ready;  // recorded on the compute stream, waited on by the comm stream
  CommHandle comm;
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

NcclCommunicator::NcclCommunicator(const MpiSession& mpi, int device, void* compute_stream)
    : rank_(mpi.rank()), size_(mpi.world_size()), device_(device), state_(std::make_unique<State>()) {
  // nullptr means the legacy default stream, also in code built with per-thread default streams.
  state_->compute = compute_stream ? static_cast<cudaStream_t>(compute_stream) : cudaStreamLegacy;

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
}

NcclCommunicator::~NcclCommunicator() = default;

void NcclCommunicator::order_after_compute() {
  VITSLIM_CUDA(cudaEventRecord(state_->compute_ready.get(), state_->compute));
  VITSLIM_CUDA(cudaStreamWaitEvent(state_->comm_stream.get(), state_->compute_ready.get(), 0));
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
  order_after_compute();
  EventHandle done = make_event(rank_);
  cudaStream_t stream = state_->comm_stream.get();
  VITSLIM_NCCL(ncclAllReduce(data, data, n, to_nccl(dtype), ncclSum, state_->comm.get(), stream));
  VITSLIM_CUDA(cudaEventRecord(done.get(), stream));
  return std::make_unique<NcclWork>(std::move(done), state_->compute, rank_);
}

void NcclCommunicator::allreduce_max(void* data, int64_t count, DType dtype) {
  size_t n = checked_count(count, "allreduce_max", rank_);
  if (n == 0) return;
  order_after_compute();
  VITSLIM_NCCL(ncclAllReduce(data, data, n, to_nccl(dtype), ncclMax, state_->comm.get(), state_->comm_stream.get()));
  finish_sync();
}

void NcclCommunicator::broadcast(void* data, int64_t bytes, int root) {
  size_t n = checked_count(bytes, "broadcast", rank_);
  if (root < 0 || root >= size_) {
    throw Error(cat("NCCL communicator broadcast on rank ", rank_, ": root ", root, " outside 0..", size_ - 1));
  }
  if (n == 0) return;
  order_after_compute();
  VITSLIM_NCCL(ncclBroadcast(data, data, n, ncclUint8, root, state_->comm.get(), state_->comm_stream.get()));
  finish_sync();
}

void NcclCommunicator::allgather(const void* data, int64_t bytes, void* out) {
  size_t n = checked_count(bytes, "allgather", rank_);
  if (n == 0) return;
  order_after_compute();
  VITSLIM_NCCL(ncclAllGather(data, out, n, ncclUint8, state_->comm.get(), state_->comm_stream.get()));
  finish_sync();
}

#undef VITSLIM_CUDA
#undef VITSLIM_NCCL

}  // namespace vitslim::dist
