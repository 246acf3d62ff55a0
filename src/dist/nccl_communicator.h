// NCCL backend of the communicator interface (dist/communicator.h): collectives on CUDA device
// buffers over one NCCL communicator spanning every MPI rank. Communication runs on a private
// non-blocking CUDA stream ordered after the caller's compute stream by events, so
// allreduce_sum_async overlaps with compute, and its Work::wait() only makes the compute stream
// wait for the result (the host is not blocked, as in PyTorch's ProcessGroupNCCL). The other
// collectives return with the result in place. As in ProcessGroupNCCL, every call first makes
// the communicator's GPU current on the calling thread (autograd's thread enqueues buckets) and
// takes that thread's current stream of the GPU as the compute stream. A watchdog thread
// (dist/watchdog.h) aborts the NCCL communicator and ends the process, naming the rank and the
// context, when a collective is still unfinished after the timeout. The header needs no CUDA or
// NCCL headers: streams are passed as void* and the handles live behind a private state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dist/communicator.h"

namespace vitslim::dist {

class MpiSession;

// True when the CUDA runtime sees at least one device; false (never throws) when it reports no
// device or no driver.
bool cuda_device_available();

class NcclCommunicator : public Communicator {
 public:
  // The cudaStream_t that produces and consumes the buffers on the calling thread, for the
  // communicator's device (nullptr = the legacy default stream).
  using CurrentStream = std::function<void*()>;

  // Collective over every rank of `mpi`: selects CUDA `device` for this thread, shares rank 0's
  // NCCL id over MPI and joins the NCCL communicator.
  NcclCommunicator(const MpiSession& mpi, int device, CurrentStream current_stream, const CommOptions& options);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  int device() const { return device_; }

  // Device buffer; it must stay allocated until work queued on the compute stream after
  // wait() has run (wait() orders the compute stream, not the host).
  std::unique_ptr<Work> allreduce_sum_async(void* data, int64_t count, DType dtype) override;
  // Device buffers; these return once the result is in place.
  void allreduce_max(void* data, int64_t count, DType dtype) override;
  void broadcast(void* data, int64_t bytes, int root) override;
  void allgather(const void* data, int64_t bytes, void* out) override;
  // CUDA events on the compute stream: the time the stream stalled waiting for communication.
  std::unique_ptr<WaitTimer> start_wait_timer() override;

 private:
  struct State;  // NCCL communicator, communication stream, ordering event, watchdog

  // Makes the communication stream wait for the work queued so far on `compute`.
  void order_after_compute(void* compute);
  // Records completion of what was just queued on the communication stream and hands it to the
  // watchdog; returns the event.
  std::shared_ptr<void> watch(const std::string& what);
  // Waits until the communication stream has finished.
  void finish_sync();

  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
  std::unique_ptr<State> state_;
};

}  // namespace vitslim::dist
