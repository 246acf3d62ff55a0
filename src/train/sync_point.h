// The steps whose numbers (loss, gradient norm) are still on the device, and the sync point that
// brings them back in one copy (every --log-every steps, before a checkpoint, at the end of an
// epoch): the ranks agree on stop signals and non-finite steps, then the steps' epoch sums, trace
// rows and progress line are written. Between sync points no step waits for the device.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/progress.h"
#include "dist/communicator.h"
#include "dist/mpi_session.h"
#include "model/weights/train_checkpoint.h"
#include "train/train_trace.h"

namespace vitslim::train {

// A step whose numbers are still on the device, waiting for the next sync point.
struct PendingStep {
  int64_t step = 0;  // global step (0-based) that ran
  int64_t epoch = 0;
  at::Tensor values;  // float64 [2] on the device: loss, gradient norm
  double lr = 0, data_seconds = 0;
  int64_t images = 0;                          // this rank's
  std::unique_ptr<dist::WaitTimer> comm_wait;  // null without a reducer
  std::vector<double> lambdas;
};

class SyncPoint {
 public:
  // What the sync point reports into; the session and the state outlive it.
  struct Run {
    const dist::MpiSession& mpi;
    model::TrainState& state;  // the epoch's sums and the training seconds grow here
    std::string out_dir;       // named with the last checkpoint when a step was not finite
    int64_t epochs = 0, steps_per_epoch = 0;
  };
  explicit SyncPoint(Run run) : run_(std::move(run)) {}

  void add(PendingStep step) { pending_.push_back(std::move(step)); }
  // Training time starts again here (after an evaluation or a checkpoint).
  void restart_clock() { last_settle_ = std::chrono::steady_clock::now(); }
  // Settles the pending steps (a trace row each on rank 0, where `trace` is not null); returns the
  // agreed stop signal (0: go on). Throws on every rank when any rank's step was not finite.
  int64_t settle(dist::Communicator& comm, TrainTrace* trace, ProgressLine& progress);
  // The last settled step's loss, and the progress line's text for the last sync point.
  double last_loss() const { return last_loss_; }
  const std::string& status() const { return status_; }

 private:
  void record(const double* values, TrainTrace* trace, ProgressLine& progress);

  Run run_;
  std::vector<PendingStep> pending_;
  std::chrono::steady_clock::time_point last_settle_ = std::chrono::steady_clock::now();
  double last_loss_ = 0;
  std::string status_;  // loss, lr and images/s
};

}  // namespace vitslim::train
