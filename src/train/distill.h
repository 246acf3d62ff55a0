// The frozen teacher of knowledge distillation during fine-tuning (docs/training.md,
// "Distillation"): any weights vitslim loads, or the weights the run started from, before any
// attention was diluted. It sees the same mixed images as the student, in eval mode and without
// gradients; train/loss.h mixes its logits into the loss. Its fingerprint (a hash of its tensors)
// joins the run's identity, so a resumed run refuses another teacher.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "model/request.h"
#include "model/vit.h"

namespace vitslim::train {

// The frozen teacher of one rank.
class Teacher {
 public:
  // `student` is the model request of the run: with source "start" its weights are loaded again as
  // they are on disk; otherwise `source` names a weights file. `student_shape` must agree with the
  // teacher's image size, channels and classes (else an Error naming both files).
  Teacher(const std::string& source, const ModelRequest& student, const ModelShape& student_shape, uint64_t seed,
          c10::Device device);

  // images [B, C, H, W] on the teacher's device -> logits [B, K], float32, no autograd history.
  at::Tensor logits(const at::Tensor& images, bool bf16);

  // A hash of the teacher's tensors (model::weights_hash): which weights teach, for the run's identity.
  const std::string& fingerprint() const { return fingerprint_; }
  const std::string& file() const { return file_; }

 private:
  model::VisionTransformer model_{nullptr};
  std::string file_, fingerprint_;
};

}  // namespace vitslim::train
