// Implements `vitslim convert` (see convert.h).
#include "model/convert.h"

#include <torch/torch.h>

#include <cstdio>

#include "core/atomic_file.h"
#include "model/checkpoint.h"

namespace vitslim::model {

void run_convert(const ConvertInputs& in) {
  const ConvertConfig& convert = in.convert;
  check_writable_output(convert.out, "--out");
  VisionTransformer model = build_model(in.model, in.runtime.seed);
  export_safetensors(model, convert.out);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::printf("wrote %s: %s, %lld parameters, removed attention: %zu blocks\n", convert.out.c_str(),
              model->shape().describe().c_str(), static_cast<long long>(params), model->removed_blocks().size());
}

}  // namespace vitslim::model
