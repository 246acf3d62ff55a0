// Implements one optimizer step's arithmetic (see step.h).
#include "train/step.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "model/autocast.h"
#include "train/loss.h"

namespace vitslim::train {

StepLoss backward_step(model::VisionTransformer& model, NamedTensors& params, const StepOptions& options,
                       const std::function<MicroBatch(int64_t)>& next, const std::function<uint64_t(int64_t)>& seed_of,
                       dist::GradientReducer* reducer) {
  model->train();
  for (auto& [name, p] : params) p.mutable_grad() = torch::Tensor();  // set to none: fresh accumulation
  StepLoss out;
  double loss_sum = 0;
  for (int64_t m = 0; m < options.accum_steps; ++m) {
    const MicroBatch batch = next(m);
    torch::manual_seed(seed_of(m));
    torch::Tensor loss;
    {
      model::CudaBf16Autocast autocast(batch.images.is_cuda() && options.bf16);
      loss = soft_cross_entropy(model->forward(batch.images), batch.targets);  // logits [B, K] -> []
    }
    loss_sum += loss.item<double>();
    out.images += batch.images.size(0);
    if (reducer) reducer->begin(m + 1 == options.accum_steps);
    (loss / static_cast<double>(options.accum_steps)).backward();
  }
  if (reducer) reducer->finish();
  out.loss = loss_sum / static_cast<double>(options.accum_steps);
  return out;
}

void update_step(NamedTensors& params, AdamW& optimizer, double lr, double norm, const StepOptions& options,
                 std::map<std::string, at::Tensor>& ema) {
  clip_grad_norm(params, options.clip_grad, norm);
  optimizer.step(params, lr);
  if (options.ema_decay > 0) {
    torch::NoGradGuard no_grad;
    for (auto& [name, p] : params) ema[name].lerp_(p, 1.0 - options.ema_decay);
  }
}

StepFlags agree_on_step(dist::Communicator& comm, c10::Device device, int rank, int64_t stop_signal, double loss,
                        double norm) {
  auto flags = torch::tensor({stop_signal, static_cast<int64_t>(std::isfinite(loss) ? 0 : rank + 1),
                              static_cast<int64_t>(std::isfinite(norm) ? 0 : rank + 1)},
                             torch::kInt64)
                   .to(device);
  comm.allreduce_max(flags.data_ptr(), 3, dist::DType::Int64);
  flags = flags.cpu();
  return {flags[0].item<int64_t>(), flags[1].item<int64_t>(), flags[2].item<int64_t>()};
}

void throw_if_not_finite(const StepFlags& f, int64_t epoch, int64_t global_step, const std::string& last_checkpoint) {
  if (f.bad_loss_rank == 0 && f.bad_grad_rank == 0) return;
  throw CollectiveError(cat(f.bad_loss_rank != 0 ? "non-finite loss" : "non-finite gradients", " at epoch ", epoch,
                            ", global step ", global_step, " on rank ",
                            (f.bad_loss_rank != 0 ? f.bad_loss_rank : f.bad_grad_rank) - 1,
                            "; the weights were not updated",
                            last_checkpoint.empty() ? std::string("; no checkpoint was written yet")
                                                    : cat("; last good checkpoint ", last_checkpoint)));
}

}  // namespace vitslim::train
