// Data-parallel gradient reduction overlapped with backward, in the manner of PyTorch DDP:
// parameters are grouped into flat buckets in reverse registration order (the order backward
// produces their gradients), a small first bucket so communication starts early. An autograd hook
// on every parameter copies its gradient into its bucket; when a bucket is complete, and every
// earlier bucket has been launched (all ranks must issue collectives in the same order), its
// all-reduce starts asynchronously. finish() launches what is left (parameters that got no
// gradient contribute zeros), waits and points each parameter's .grad at its slice of the bucket,
// which holds the mean over ranks (gradients are scaled by 1 / world size as they are copied in).
// Gradient accumulation: micro-steps begun with begin(false) only accumulate locally; the
// micro-step begun with begin(true) reduces the accumulated sum.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/communicator.h"

namespace vitslim::dist {

struct ReducerStats {
  int64_t buckets = 0;
  int64_t bytes = 0;       // reduced per step
  int64_t overlapped = 0;  // buckets launched during backward, summed over steps
};

class GradientReducer {
 public:
  // params: the trainable parameters (float32, same device), in registration order.
  GradientReducer(std::vector<std::pair<std::string, at::Tensor>> params, Communicator& comm, int64_t bucket_bytes,
                  int64_t first_bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before a micro-step's backward: sync = true on the last micro-step of an optimizer step.
  void begin(bool sync);
  // After the backward of a sync micro-step: every .grad holds the mean over ranks (on a GPU:
  // once the compute stream reaches this point; the host does not wait).
  void finish();
  // How long the latest finish() made the compute wait for communication (null before the
  // first); the caller reads it when it next synchronises, so reading costs no extra wait.
  std::unique_ptr<WaitTimer> take_wait_timer() { return std::move(last_wait_); }

  const ReducerStats& stats() const { return stats_; }
  // Bucket membership, first bucket first (for tests and the trace).
  std::vector<std::vector<std::string>> bucket_names() const;

 private:
  struct Slot;
  struct Bucket;
  void on_grad(size_t slot, const at::Tensor& grad);
  void launch_ready();

  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  Communicator& comm_;
  at::Tensor scale_;  // 1 / world size (float32 scalar)
  bool sync_ = false;
  size_t next_launch_ = 0;
  ReducerStats stats_;
  std::unique_ptr<WaitTimer> last_wait_;
};

}  // namespace vitslim::dist
