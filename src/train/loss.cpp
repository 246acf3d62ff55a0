// Implements the training loss (see loss.h).
#include "train/loss.h"

#include <torch/torch.h>

namespace vitslim::train {

at::Tensor soft_cross_entropy(const at::Tensor& logits, const at::Tensor& targets) {
  return torch::sum(-targets * torch::log_softmax(logits.to(torch::kFloat32), -1), -1).mean();
}

at::Tensor training_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& targets,
                         const DistillSettings& loss) {
  const at::Tensor base = soft_cross_entropy(student, targets);  // []
  if (loss.kind == Distill::None || !teacher.defined()) return base;
  const at::Tensor s = student.to(torch::kFloat32);  // [B, K]
  const at::Tensor t = teacher.to(torch::kFloat32);  // [B, K]
  at::Tensor kd;                                     // []
  if (loss.kind == Distill::Soft) {
    const at::Tensor log_p_student = torch::log_softmax(s / loss.tau, -1);  // [B, K]
    const at::Tensor log_p_teacher = torch::log_softmax(t / loss.tau, -1);  // [B, K]
    // KL(teacher || student): summed over the classes, mean over the batch.
    kd = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean() * (loss.tau * loss.tau);
  } else {
    kd = torch::nn::functional::cross_entropy(s, t.argmax(-1));  // labels [B] -> []
  }
  return base * (1.0 - loss.alpha) + kd * loss.alpha;
}

}  // namespace vitslim::train
