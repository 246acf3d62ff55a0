// The heavy headers most translation units include, precompiled once per build directory by the
// vitslim_pch target and reused by every target that compiles LibTorch code
// (cmake/precompiled.cmake). Parsing <torch/torch.h> costs ~12 s and > 1 GB per file; loading this
// header's compiled form costs well under a second. Files that include no LibTorch header opt out.
// This header is not part of any layer and no source includes it: each file still includes what
// it uses.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>
