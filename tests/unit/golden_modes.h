// The attention modes of the golden fixtures (scripts/make_golden.py CASES, which
// scripts/make_variant_golden.py reuses): per case, the blocks that are not full and their lambda.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "model/attention_mode.h"

namespace vitslim::test {

using BlockModes = std::map<int64_t, std::pair<model::AttentionMode, double>>;

inline const std::map<std::string, BlockModes>& golden_modes() {
  using model::AttentionMode;
  static const std::map<std::string, BlockModes> kModes = {
      {"full", {}},
      {"dilute", {{1, {AttentionMode::Diluting, 0.5}}, {2, {AttentionMode::Diluting, 0.5}}}},
      {"removed", {{0, {AttentionMode::Removed, 0.0}}, {2, {AttentionMode::Removed, 0.0}}}},
      {"skipped", {{1, {AttentionMode::Skipped, 1.0}}, {3, {AttentionMode::Skipped, 1.0}}}},
      {"mixed",
       {{0, {AttentionMode::Removed, 0.0}}, {1, {AttentionMode::Diluting, 0.25}}, {3, {AttentionMode::Skipped, 1.0}}}},
  };
  return kModes;
}

}  // namespace vitslim::test
