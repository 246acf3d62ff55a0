// The attention mode of a block (src/model/vit.h has the arithmetic of each) and its one name
// table, which gives parse and to_string (checkpoints, traces and reports store the names). No torch.
#pragma once

#include <string>

#include "core/options.h"

namespace vitslim::model {

enum class AttentionMode { Full, Diluting, Skipped, Removed };
inline const EnumNames<AttentionMode> kAttentionModeNames = {{AttentionMode::Full, "full"},
                                                             {AttentionMode::Diluting, "diluting"},
                                                             {AttentionMode::Skipped, "skipped"},
                                                             {AttentionMode::Removed, "removed"}};
inline const char* to_string(AttentionMode mode) { return enum_name(kAttentionModeNames, mode); }

// The questions code asks of a mode. Each answers with a switch that has no default, so a new mode
// is a compile error (-Wswitch) here, in every question, and code elsewhere never compares modes.
// The block computes its attention branch at full strength: x + Attn(x) (ToMe takes its keys there).
inline bool is_full(AttentionMode mode) {
  switch (mode) {
    case AttentionMode::Full:
      return true;
    case AttentionMode::Diluting:
    case AttentionMode::Skipped:
    case AttentionMode::Removed:
      return false;
  }
  return false;
}
// The block computes its attention branch at all (full, or diluting: (2 - lambda) x + lambda Attn(x)).
inline bool has_attention(AttentionMode mode) {
  switch (mode) {
    case AttentionMode::Full:
    case AttentionMode::Diluting:
      return true;
    case AttentionMode::Skipped:
    case AttentionMode::Removed:
      return false;
  }
  return false;
}
// The block's lambda applies (on its way from full to removed).
inline bool is_diluting(AttentionMode mode) {
  switch (mode) {
    case AttentionMode::Diluting:
      return true;
    case AttentionMode::Full:
    case AttentionMode::Skipped:
    case AttentionMode::Removed:
      return false;
  }
  return false;
}
// The attention's parameters are gone from the block (x -> 2x); a skipped block computes the same
// but keeps them (timing the merged model without rebuilding it).
inline bool is_removed(AttentionMode mode) {
  switch (mode) {
    case AttentionMode::Removed:
      return true;
    case AttentionMode::Full:
    case AttentionMode::Diluting:
    case AttentionMode::Skipped:
      return false;
  }
  return false;
}
// `what` names the file or flag the text came from.
inline AttentionMode parse_attention_mode(const std::string& text, const std::string& what) {
  return parse_enum(kAttentionModeNames, text, what + ": attention mode");
}

}  // namespace vitslim::model
