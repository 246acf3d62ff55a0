// Implements dilution control (see dilution.h).
#include "train/dilution.h"

namespace vitslim::train {

bool apply_lambda(model::VisionTransformer& model, const std::vector<int64_t>& layers, double lambda) {
  bool removed = false;
  for (int64_t b : layers) {
    auto& block = model->block(b);
    if (model::is_removed(block->mode())) continue;
    if (lambda <= 0.0) {
      block->set_mode(model::AttentionMode::Removed);
      removed = true;
    } else {
      block->set_mode(model::AttentionMode::Diluting, lambda);
    }
  }
  return removed;
}

std::vector<double> block_lambdas(model::VisionTransformer& model) {
  std::vector<double> lambdas;
  for (int64_t b = 0; b < model->depth(); ++b) {
    const auto& block = model->block(b);
    lambdas.push_back(model::is_removed(block->mode()) ? 0.0 : block->lambda());
  }
  return lambdas;
}

std::vector<std::string> block_modes(model::VisionTransformer& model) {
  std::vector<std::string> modes;
  for (int64_t b = 0; b < model->depth(); ++b) modes.emplace_back(model::to_string(model->block(b)->mode()));
  return modes;
}

bool all_removed(model::VisionTransformer& model, const std::vector<int64_t>& layers) {
  for (int64_t b : layers) {
    if (!model::is_removed(model->block(b)->mode())) return false;
  }
  return true;
}

}  // namespace vitslim::train
