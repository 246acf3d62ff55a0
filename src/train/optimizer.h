// AdamW as torch.optim.AdamW(fused=True) computes it (decoupled weight decay, bias-corrected
// moments): LibTorch's fused multi-tensor kernel, one launch per parameter group on a GPU instead
// of about ten per parameter. Two parameter groups by name (decayed, and no decay for 1-D
// parameters, pos_embed, cls_token) and state keyed by parameter name, so that checkpoints are
// readable and parameters that disappear (attention of a block switched to Removed) simply drop
// their state. Gradient-norm clipping stays on the device too: nothing here waits for the GPU.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace vitslim::train {

struct AdamWOptions {
  double weight_decay = 0.05;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

class AdamW {
 public:
  AdamW(const AdamWOptions& options, std::set<std::string> no_decay);

  // One update of `params` (name, tensor with .grad) at learning rate lr. Parameters without a
  // gradient are left alone (like torch). `found_inf` (float32 [] on the parameters' device):
  // where it holds 1 the kernels leave parameters and moments unchanged (torch's GradScaler
  // protocol), so a non-finite step is skipped without the host looking at it.
  void step(const std::vector<std::pair<std::string, at::Tensor>>& params, double lr, const at::Tensor& found_inf);
  // Steps taken, skipped ones not counted (reads the device's count back: a sync on a GPU).
  int64_t steps() const;

  // Checkpointing: "exp_avg/<name>", "exp_avg_sq/<name>" tensors and the step count.
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps);
  // Forgets state of parameters not in `names` (after blocks were removed).
  void retain(const std::set<std::string>& names);

 private:
  struct Moments {
    at::Tensor exp_avg, exp_avg_sq;
  };
  AdamWOptions options_;
  std::set<std::string> no_decay_;
  std::map<std::string, Moments> state_;
  int64_t steps_ = 0;      // the count loaded from a checkpoint, until the first step
  at::Tensor step_count_;  // float32 [] on the parameters' device: the count the kernel reads
};

// The L2 norm over all gradients, float32 [] on their device (NaN/Inf when any gradient is):
// one multi-tensor norm, no host sync.
at::Tensor grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params);
// With max_norm > 0, scales every gradient by min(1, max_norm / (norm + 1e-6)) on the device, as
// torch.nn.utils.clip_grad_norm_ does; `norm` is grad_norm of params.
void clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double max_norm,
                    const at::Tensor& norm);

}  // namespace vitslim::train
