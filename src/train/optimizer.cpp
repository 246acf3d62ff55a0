// Implements AdamW and gradient-norm clipping (see optimizer.h) with LibTorch's fused and
// multi-tensor (foreach) kernels.
#include "train/optimizer.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace vitslim::train {

namespace {
constexpr const char* kExpAvg = "exp_avg/";
constexpr const char* kExpAvgSq = "exp_avg_sq/";
constexpr double kClipEps = 1e-6;  // torch.nn.utils.clip_grad_norm_
}  // namespace

AdamW::AdamW(const AdamWOptions& options, std::set<std::string> no_decay)
    : options_(options), no_decay_(std::move(no_decay)) {}

namespace {
// The tensors of one parameter group, as the fused kernel takes them.
struct Group {
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs;
};
}  // namespace

void AdamW::step(const std::vector<std::pair<std::string, at::Tensor>>& params, double lr,
                 const at::Tensor& found_inf) {
  torch::NoGradGuard no_grad;
  Group decayed, plain;
  for (const auto& [name, p] : params) {
    const at::Tensor& grad = p.grad();
    if (!grad.defined()) continue;
    auto it = state_.find(name);
    if (it == state_.end()) {
      it = state_.emplace(name, Moments{torch::zeros_like(p), torch::zeros_like(p)}).first;
    }
    Group& g = no_decay_.count(name) ? plain : decayed;
    g.params.push_back(p);
    g.grads.push_back(grad);
    g.exp_avgs.push_back(it->second.exp_avg);
    g.exp_avg_sqs.push_back(it->second.exp_avg_sq);
  }
  if (decayed.params.empty() && plain.params.empty()) return;
  const at::Tensor& any = decayed.params.empty() ? plain.params.front() : decayed.params.front();
  if (!step_count_.defined() || step_count_.device() != any.device()) {
    step_count_ = torch::full({}, static_cast<double>(steps()), any.options().dtype(torch::kFloat32));
  }
  // As torch's fused AdamW: the count advances, and steps back where found_inf holds 1 (queued on
  // the device, not synchronised; integers are exact in float32 up to 2^24 steps).
  step_count_.add_(1);
  if (found_inf.defined()) step_count_.sub_(found_inf);
  for (auto* g : {&decayed, &plain}) {
    if (g->params.empty()) continue;
    const std::vector<at::Tensor> steps(g->params.size(), step_count_);
    at::_fused_adamw_(g->params, g->grads, g->exp_avgs, g->exp_avg_sqs, {}, steps, lr, options_.beta1, options_.beta2,
                      g == &plain ? 0.0 : options_.weight_decay, options_.eps, /*amsgrad=*/false,
                      /*maximize=*/false, /*grad_scale=*/std::nullopt, found_inf);
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, m] : state_) {
    out.emplace_back(kExpAvg + name, m.exp_avg);
    out.emplace_back(kExpAvgSq + name, m.exp_avg_sq);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps) {
  state_.clear();
  const std::string avg = kExpAvg, avg_sq = kExpAvgSq;
  for (const auto& [key, t] : tensors) {
    if (key.rfind(avg, 0) != 0) continue;
    const std::string name = key.substr(avg.size());
    auto sq = tensors.find(avg_sq + name);
    if (sq == tensors.end()) throw Error(cat("optimizer state: ", key, " has no ", avg_sq, name));
    state_[name] = Moments{t.clone(), sq->second.clone()};
  }
  steps_ = steps;
  step_count_ = at::Tensor();
}

int64_t AdamW::steps() const { return step_count_.defined() ? std::llround(step_count_.item<double>()) : steps_; }

void AdamW::retain(const std::set<std::string>& names) {
  for (auto it = state_.begin(); it != state_.end();) {
    it = names.count(it->first) ? std::next(it) : state_.erase(it);
  }
}

at::Tensor grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) {
    return params.empty() ? torch::zeros({}) : torch::zeros({}, params.front().second.options().requires_grad(false));
  }
  return torch::stack(torch::_foreach_norm(grads, 2)).norm(2);  // [n] -> []
}

void clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double max_norm,
                    const at::Tensor& norm) {
  if (!(max_norm > 0)) return;
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return;
  const at::Tensor coef = (max_norm / (norm + kClipEps)).clamp_max(1.0);  // []
  torch::_foreach_mul_(grads, coef);
}

}  // namespace vitslim::train
