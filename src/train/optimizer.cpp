// Implements AdamW and gradient-norm clipping (see optimizer.h), following torch.optim.AdamW's
// single-tensor arithmetic step for step.
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

void AdamW::step(const std::vector<std::pair<std::string, at::Tensor>>& params, double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double bias1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(options_.beta2, static_cast<double>(steps_)));
  const double step_size = lr / bias1;
  for (const auto& [name, p] : params) {
    const at::Tensor& grad = p.grad();
    if (!grad.defined()) continue;
    auto it = state_.find(name);
    if (it == state_.end()) {
      it = state_.emplace(name, Moments{torch::zeros_like(p), torch::zeros_like(p)}).first;
    }
    Moments& m = it->second;
    const double decay = no_decay_.count(name) ? 0.0 : options_.weight_decay;
    if (decay != 0.0) p.mul_(1.0 - lr * decay);
    m.exp_avg.lerp_(grad, 1.0 - options_.beta1);
    m.exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    auto denom = (m.exp_avg_sq.sqrt() / bias2_sqrt).add_(options_.eps);
    p.addcdiv_(m.exp_avg, denom, -step_size);
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
}

void AdamW::retain(const std::set<std::string>& names) {
  for (auto it = state_.begin(); it != state_.end();) {
    it = names.count(it->first) ? std::next(it) : state_.erase(it);
  }
}

double grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const auto& [name, p] : params) {
    if (p.grad().defined()) norms.push_back(p.grad().norm(2));
  }
  if (norms.empty()) return 0.0;
  return torch::stack(norms).norm(2).item<double>();
}

void clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double max_norm, double norm) {
  if (!(max_norm > 0 && norm > max_norm)) return;
  torch::NoGradGuard no_grad;
  const double coef = max_norm / (norm + kClipEps);
  for (const auto& [name, p] : params) {
    if (p.grad().defined()) p.grad().mul_(coef);
  }
}

}  // namespace vitslim::train
