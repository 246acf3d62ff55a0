// `vitslim convert`: import a checkpoint (timm/DeiT .pth, .safetensors, a transformers folder) and
// export it as timm-named .safetensors.
#pragma once

#include "core/runtime.h"
#include "model/request.h"
#include "model/settings.h"

namespace vitslim::model {

// What `vitslim convert` is given.
struct ConvertInputs {
  const ModelRequest& model;
  const ConvertConfig& convert;
  const RuntimeConfig& runtime;
};

void run_convert(const ConvertInputs& inputs);

}  // namespace vitslim::model
