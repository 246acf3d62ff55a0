// Implements the sync point of the training loop (see sync_point.h).
#include "train/sync_point.h"

#include <torch/torch.h>

#include <cmath>

#include "core/log.h"
#include "core/signals.h"
#include "train/step.h"

namespace vitslim::train {

int64_t SyncPoint::settle(dist::Communicator& comm, TrainTrace* trace, ProgressLine& progress) {
  if (pending_.empty()) return 0;
  std::vector<at::Tensor> device_values;
  for (const auto& row : pending_) device_values.push_back(row.values);
  const at::Tensor values = torch::stack(device_values).cpu().contiguous();  // [n, 2] float64: loss, norm
  comm.check_health();
  const double* v = values.data_ptr<double>();
  int64_t bad_loss = -1, bad_grad = -1;
  for (size_t k = 0; k < pending_.size(); ++k) {
    if (bad_loss < 0 && !std::isfinite(v[2 * k])) bad_loss = pending_[k].step;
    if (bad_grad < 0 && !std::isfinite(v[2 * k + 1])) bad_grad = pending_[k].step;
  }
  const StepFlags f = agree_on_steps(run_.mpi, StopSignals::received(), bad_loss, bad_grad);
  if (f.first_bad_step() >= 0) {
    const int64_t bad = f.first_bad_step();
    int64_t epoch = pending_.front().epoch;
    for (const auto& row : pending_) epoch = row.step == bad ? row.epoch : epoch;
    const auto kept = run_.mpi.rank() == 0 ? model::list_checkpoints(run_.out_dir) : std::vector<int64_t>{};
    throw_if_not_finite(f, epoch, kept.empty() ? "" : model::checkpoint_path(run_.out_dir, kept.back()));
  }
  record(v, trace, progress);
  pending_.clear();
  return f.stop_signal;
}

// The settled steps (`values`: loss, norm per pending step): epoch sums, trace rows with one
// flush, the progress line. Throughput is over the steps since the last sync point: on a GPU the
// host runs ahead, so only that sum is real time.
void SyncPoint::record(const double* values, TrainTrace* trace, ProgressLine& progress) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - last_settle_).count();
  last_settle_ = now;
  const int world = run_.mpi.world_size();
  int64_t images = 0;
  for (const auto& row : pending_) images += row.images;
  const double rate = static_cast<double>(images * world) / seconds;
  model::TrainState& state = run_.state;
  state.epoch_seconds += seconds;
  state.step_seconds += seconds;
  for (size_t k = 0; k < pending_.size(); ++k) {
    PendingStep& row = pending_[k];
    const double loss = values[2 * k], norm = values[2 * k + 1];
    last_loss_ = loss;
    state.epoch_loss_sum += loss;
    state.epoch_images += row.images * world;
    if (!trace) continue;
    const double wait = row.comm_wait ? row.comm_wait->seconds() : 0.0;
    trace->add_step({row.step + 1, row.epoch, loss, row.lr, norm, rate, row.data_seconds, wait}, row.lambdas);
  }
  if (trace) trace->flush();
  const PendingStep& last = pending_.back();
  status_ = cat("loss ", fmt(last_loss_), " lr ", fmt(last.lr, 3), " ", static_cast<int64_t>(rate), " img/s");
  progress.update(cat("epoch ", last.epoch + 1, "/", run_.epochs), state.step_in_epoch, run_.steps_per_epoch, status_);
}

}  // namespace vitslim::train
