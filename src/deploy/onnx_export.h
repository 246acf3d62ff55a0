// A VisionTransformer as an ONNX graph (opset 17): input "images" [batch, Cin, H, W] float32
// with a symbolic batch dimension, output "logits" [batch, K]. Each block is written as the model
// runs it now:
//   Full      x + proj(softmax(q k^T) v), the D^-1/2 scale folded into the query weights
//   Diluting  (2 - lambda) x + lambda-scaled projection (lambda folded into proj)
//   Removed   an MLP-only block: x -> 2x (no node at all once the factors are folded)
// The last block computes the class token's row only, as the model does. GELU is written as the
// erf pattern runtimes fuse. Token merging (ToMe) is exported as the model runs it: bipartite
// matching with TopK/ArgMax, the merge as row gathers and one-hot products, proportional
// attention as a log(size) logit bias.
#pragma once

#include <map>
#include <string>

#include "core/atomic_file.h"
#include "model/vit.h"

namespace vitslim::deploy {

// Writes `model` (evaluation mode, CPU float32 weights) to `path` atomically, or into `outputs`
// (committed by the caller with the run's other outputs) when given; `metadata` goes into the file's metadata_props
// next to the model description (model::model_metadata). Returns the file size in bytes.
uint64_t write_onnx(model::VisionTransformer& model, const std::map<std::string, std::string>& metadata,
                    const std::string& path, OutputSet* outputs = nullptr);

}  // namespace vitslim::deploy
