// Option declarations several jobs share that reach into more than one layer.
#pragma once

#include <cstdint>
#include <vector>

#include "core/options.h"
#include "jobs/config.h"

namespace vitslim {

// --remove-layers: "0,1,3" or SEARCH.json@RATIO (the layers a search result selected), into
// `layers` (removed blocks for most jobs, diluting blocks for train). The dump writes the list.
inline constexpr const char* kRemoveLayersHelp =
    "blocks whose attention is removed (x -> 2x): 0,1,3 or SEARCH.json@RATIO (a search result)";
void declare_remove_layers(Options& options, std::vector<int64_t>& layers, const char* help);

// The model options with --remove-layers naming removed blocks (most jobs); tome_tuned_by as in
// ModelRequest::declare.
void declare_model(Options& options, Config& config, const std::string& tome_tuned_by = "");

// The INI text of a `vitslim train` run: `base` with these parts (plan-train.ini, the plan's probes).
std::string train_config_ini(const Config& base, const ModelRequest& model, const DataConfig& data,
                             const TrainConfig& train);

}  // namespace vitslim
