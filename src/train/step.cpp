// Implements one optimizer step's arithmetic (see step.h).
#include "train/step.h"

#include <torch/torch.h>

#include <vector>

#include "core/error.h"
#include "model/autocast.h"

namespace vitslim::train {

namespace {
void lap(PhaseClock* clock, Phase phase) {
  if (clock) clock->lap(phase);
}
}  // namespace

StepLoss backward_step(model::VisionTransformer& model, NamedTensors& params, const StepOptions& options,
                       const std::function<MicroBatch(int64_t)>& next, const std::function<uint64_t(int64_t)>& seed_of,
                       dist::GradientReducer* reducer, PhaseClock* clock) {
  model->train();
  for (auto& [name, p] : params) p.mutable_grad() = torch::Tensor();  // set to none: fresh accumulation
  StepLoss out;
  at::Tensor loss_sum;  // float64 [], on the device
  for (int64_t m = 0; m < options.accum_steps; ++m) {
    const MicroBatch batch = next(m);
    torch::manual_seed(seed_of(m));
    torch::Tensor loss;
    {
      model::Bf16Autocast autocast(batch.images.device().type(), options.bf16);
      loss = training_loss(model->forward(batch.images), batch.teacher, batch.targets, options.distill);  // -> []
    }
    const at::Tensor value = loss.detach().to(torch::kFloat64);
    loss_sum = loss_sum.defined() ? loss_sum + value : value;
    out.images += batch.images.size(0);
    lap(clock, Phase::Forward);
    if (reducer) reducer->begin(m + 1 == options.accum_steps);
    (loss / static_cast<double>(options.accum_steps)).backward();
    lap(clock, Phase::Backward);
  }
  if (reducer) reducer->finish();
  lap(clock, Phase::AllReduce);
  out.loss = loss_sum / static_cast<double>(options.accum_steps);  // []
  return out;
}

at::Tensor not_finite(const at::Tensor& loss, const at::Tensor& norm) {
  return torch::logical_or(torch::isfinite(loss).logical_not(), torch::isfinite(norm).logical_not())
      .to(torch::kFloat32);  // []
}

void update_step(NamedTensors& params, AdamW& optimizer, double lr, const at::Tensor& norm, const at::Tensor& found_inf,
                 const StepOptions& options, std::map<std::string, at::Tensor>& ema, PhaseClock* clock) {
  clip_grad_norm(params, options.clip_grad, norm);
  optimizer.step(params, lr, found_inf);
  lap(clock, Phase::Optimizer);
  if (options.ema_decay > 0) update_ema(params, ema, options.ema_decay, found_inf);
  lap(clock, Phase::Ema);
}

void update_ema(NamedTensors& params, std::map<std::string, at::Tensor>& ema, double decay,
                const at::Tensor& found_inf) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> averages, weights;
  for (auto& [name, p] : params) {
    averages.push_back(ema.at(name));
    weights.push_back(p);
  }
  if (averages.empty()) return;
  if (!averages.front().is_cuda()) {
    // The CPU reads the flag at no cost and keeps the scalar kernel (the same bits as before).
    if (found_inf.defined() && found_inf.item<float>() != 0) return;
    torch::_foreach_lerp_(averages, weights, 1.0 - decay);
    return;
  }
  // On a GPU the weight itself is gated, (1 - decay) x (1 - found_inf), so the host never waits.
  at::Tensor w = torch::full({}, 1.0 - decay, averages.front().options());  // []
  if (found_inf.defined()) w = w * (1 - found_inf.to(w.dtype()));
  torch::_foreach_lerp_(averages, weights, std::vector<at::Tensor>(averages.size(), w));
}

namespace {
// (step, rank) packed so that the all-reduce maximum picks the earliest step and, among the ranks
// that saw it, the lowest rank; 0 means none.
constexpr int64_t kStepLimit = int64_t{1} << 40;
int64_t pack_bad(int64_t step, int rank, int world) {
  if (step < 0) return 0;
  return (kStepLimit - step) * world + (world - 1 - rank) + 1;
}
void unpack_bad(int64_t code, int world, int64_t& step, int64_t& rank) {
  if (code == 0) return;
  step = kStepLimit - (code - 1) / world;
  rank = world - 1 - (code - 1) % world;
}
}  // namespace

StepFlags agree_on_steps(const dist::MpiSession& mpi, int64_t stop_signal, int64_t bad_loss_step,
                         int64_t bad_grad_step) {
  const int world = mpi.world_size();
  const std::vector<int64_t> all = mpi.allreduce_max(
      {stop_signal, pack_bad(bad_loss_step, mpi.rank(), world), pack_bad(bad_grad_step, mpi.rank(), world)});
  StepFlags f;
  f.stop_signal = all.at(0);
  unpack_bad(all.at(1), world, f.bad_loss_step, f.bad_loss_rank);
  unpack_bad(all.at(2), world, f.bad_grad_step, f.bad_grad_rank);
  return f;
}

void throw_if_not_finite(const StepFlags& f, int64_t epoch, const std::string& last_checkpoint) {
  const bool loss = f.loss_first();
  if (f.first_bad_step() < 0) return;
  throw CollectiveError(cat(loss ? "non-finite loss" : "non-finite gradients", " at epoch ", epoch, ", global step ",
                            f.first_bad_step(), " on rank ", loss ? f.bad_loss_rank : f.bad_grad_rank,
                            "; that step did not update the weights",
                            last_checkpoint.empty() ? std::string("; no checkpoint was written yet")
                                                    : cat("; last good checkpoint ", last_checkpoint)));
}

}  // namespace vitslim::train
