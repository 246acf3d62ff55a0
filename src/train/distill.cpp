// Implements the frozen teacher of distillation (see distill.h).
#include "train/distill.h"

#include <torch/torch.h>

#include "core/error.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "train/settings.h"

namespace vitslim::train {

namespace {

std::string describe(const ModelShape& s) {
  return cat(s.num_classes, " classes, ", s.img_size, " px, ", s.in_chans, " channel(s)");
}

}  // namespace

Teacher::Teacher(const std::string& source, const ModelRequest& student, const ModelShape& student_shape, uint64_t seed,
                 c10::Device device) {
  ModelRequest request;
  if (source == kTeacherStart) {
    if (student.weights.empty()) {
      throw Error("--teacher start: the run starts from random weights (no --weights), so there is no teacher");
    }
    request = student;  // the same file as loaded, before any block dilutes
    request.drop_path = 0;
  } else {
    request.weights = source;
  }
  file_ = request.weights;
  model_ = model::build_model(request, seed);
  const ModelShape& shape = model_->shape();
  if (shape.num_classes != student_shape.num_classes || shape.img_size != student_shape.img_size ||
      shape.in_chans != student_shape.in_chans) {
    throw Error(cat("--teacher ", file_, " (", describe(shape), ") does not fit the student ",
                    student.weights.empty() ? std::string("(random init)") : student.weights, " (",
                    describe(student_shape), ")"));
  }
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
  model_->eval();
  fingerprint_ = model::weights_hash(model_);
  model_->to(device);
}

at::Tensor Teacher::logits(const at::Tensor& images, bool bf16) {
  torch::NoGradGuard no_grad;
  model::CudaBf16Autocast autocast(images.is_cuda() && bf16);
  return model_->forward(images).to(torch::kFloat32);  // [B, C, H, W] -> [B, K]
}

}  // namespace vitslim::train
