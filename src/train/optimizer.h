// AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments), with
// two parameter groups by name (decayed, and no decay for 1-D parameters, pos_embed, cls_token)
// and state keyed by parameter name, so that checkpoints are readable and parameters that
// disappear (attention of a block switched to Removed) simply drop their state.
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
  // gradient are left alone (like torch).
  void step(const std::vector<std::pair<std::string, at::Tensor>>& params, double lr);
  int64_t steps() const { return steps_; }

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
  int64_t steps_ = 0;
};

// The L2 norm over all gradients (NaN/Inf when any gradient is).
double grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params);
// When `norm` (grad_norm of params) is above max_norm (> 0), scales every gradient by
// max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_ does.
void clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double max_norm, double norm);

}  // namespace vitslim::train
