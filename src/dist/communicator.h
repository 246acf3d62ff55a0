// Collective communication for data-parallel training, on raw buffers, behind one interface with
// three backends chosen at run time: Local (one process, no MPI at all), MPI (CPU buffers,
// non-blocking MPI_Iallreduce on a private duplicate of MPI_COMM_WORLD) and NCCL (CUDA buffers;
// dist/nccl_communicator.h). Every rank must issue the same collectives in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/runtime.h"

namespace vitslim::dist {

class MpiSession;

enum class DType { Float32, Float64, Int64 };
size_t dtype_size(DType dtype);

// A collective in flight. wait() blocks until the buffer holds the result; test() polls and also
// drives progress of the underlying library.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};

// How long the caller's compute waited for communication, started before the waits and stopped
// after them. The default times the host; the NCCL backend times its compute stream with CUDA
// events, where the host never waits.
class WaitTimer {
 public:
  virtual ~WaitTimer() = default;
  virtual void stop() = 0;
  // Seconds between start and stop; may wait for the device to reach the stop.
  virtual double seconds() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "local", "mpi", "nccl"

  // In-place element-wise sum over ranks of `count` values at `data`.
  virtual std::unique_ptr<Work> allreduce_sum_async(void* data, int64_t count, DType dtype) = 0;
  void allreduce_sum(void* data, int64_t count, DType dtype) { allreduce_sum_async(data, count, dtype)->wait(); }
  // In-place element-wise maximum (control values: stop flags, failing ranks).
  virtual void allreduce_max(void* data, int64_t count, DType dtype) = 0;
  // Root's `bytes` bytes at `data` on every rank.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // Every rank's `bytes` bytes, in rank order, into `out` (size() * bytes).
  virtual void allgather(const void* data, int64_t bytes, void* out) = 0;

  virtual std::unique_ptr<WaitTimer> start_wait_timer();
  // Throws the error a watchdog recorded, if any (a collective that timed out).
  virtual void check_health() {}
  // What the caller is doing ("global step 1200"); a collective that times out names it.
  void set_context(std::string context);
  std::string context() const;

 private:
  mutable std::mutex context_mutex_;
  std::string context_;
};

// Collectives that have not completed `timeout_seconds` after the caller began to wait (MPI) or
// after they were queued (NCCL) stop the job with an error naming the rank and the context: a
// peer that hangs (stuck in I/O) would otherwise stall every rank until the walltime. 0: no limit.
struct CommOptions {
  double timeout_seconds = 0;
};

// Local when the session is a single process, MPI otherwise (CPU buffers).
std::unique_ptr<Communicator> make_cpu_communicator(const MpiSession& mpi, const CommOptions& options = {});
// For training on `device` ("cpu", or "cuda" with this rank's GPU `cuda_index`): the CPU
// communicator, or NCCL ordered after LibTorch's current CUDA stream of that GPU (taken at every
// call, on whichever thread makes it) when several ranks use GPUs. Throws when this build has no
// NCCL or no CUDA LibTorch.
std::unique_ptr<Communicator> make_communicator(const MpiSession& mpi, Device device, int cuda_index,
                                                const CommOptions& options);

}  // namespace vitslim::dist
