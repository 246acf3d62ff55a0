// Implements the frozen teacher of distillation (see distill.h).
#include "train/distill.h"

#include <torch/torch.h>

#include "core/error.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/weights/weights.h"
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
    file_ = request.weights;
    model_ = model::build_model(request, seed);
  } else {
    // A file alone; where it does not say its head count (a timm state dict) and has the
    // student's width, the student's count is the natural reading.
    model::StateDict weights = model::read_weights(source);
    const model::ShapeFromWeights found = model::shape_from_weights(weights);
    request.weights = source;
    if (!found.num_heads && found.embed_dim == student_shape.embed_dim) request.num_heads = student_shape.num_heads;
    file_ = source;
    model_ = model::build_model(request, seed, std::move(weights));
  }
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
  model::Bf16Autocast autocast(images.device().type(), bf16);
  return model_->forward(images).to(torch::kFloat32);  // [B, C, H, W] -> [B, K]
}

}  // namespace vitslim::train
