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
// `what` names the file or flag the text came from.
inline AttentionMode parse_attention_mode(const std::string& text, const std::string& what) {
  return parse_enum(kAttentionModeNames, text, what + ": attention mode");
}

}  // namespace vitslim::model
