// Dilution of the chosen blocks during training (docs/method.md section 4): every diluting block
// gets the schedule's lambda, and at lambda 0 it switches to Removed (no attention parameters or
// compute) for the rest of the run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/vit.h"

namespace vitslim::train {

// Sets `lambda` on every block of `layers` that is not yet removed; returns true when some block
// became Removed now (its parameters are gone: the trainer rebuilds its parameter list).
bool apply_lambda(model::VisionTransformer& model, const std::vector<int64_t>& layers, double lambda);
// Per block: 1 full, lambda diluting, 0 removed.
std::vector<double> block_lambdas(model::VisionTransformer& model);
// Per block: the attention mode's name (checkpoints and train.json store them).
std::vector<std::string> block_modes(model::VisionTransformer& model);
bool all_removed(model::VisionTransformer& model, const std::vector<int64_t>& layers);

}  // namespace vitslim::train
