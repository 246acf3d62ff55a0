// Unit tests of distillation (train/loss.h, train/distill.h): soft and hard losses and their
// gradients against PyTorch's F.kl_div / F.cross_entropy (scripts/make_test_checkpoints.py), the
// frozen teacher (no gradients, eval mode, "start" = the weights file as loaded), shape checks
// naming both files, and the fingerprint that changes with any weight.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "model/checkpoint.h"
#include "test_util.h"
#include "train/distill.h"
#include "train/loss.h"

namespace t = vitslim::train;
namespace m = vitslim::model;
using vitslim::Distill;

namespace {

torch::Tensor golden(m::StateDict& dict, const std::string& name) {
  const auto* tensor = dict.find(name);
  if (!tensor) throw vitslim::Error("distill_golden: no " + name);
  return *tensor;
}

vitslim::ModelRequest golden_request() {
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  r.weights = vitslim::test::fixture("golden_vit_test.safetensors");
  return r;
}

}  // namespace

TEST(DistillLoss, MatchesPyTorchKlDivAndCrossEntropy) {
  auto dict = m::read_safetensors(vitslim::test::test_data("distill_golden.safetensors"));
  const auto teacher = golden(dict, "teacher"), targets = golden(dict, "targets");
  struct Case {
    Distill kind;
    double tau, alpha;
    const char* key;
  };
  for (const Case& c :
       {Case{Distill::Soft, 1.0, 0.5, "soft.tau1.alpha0.5"}, Case{Distill::Soft, 4.0, 0.7, "soft.tau4.alpha0.7"},
        Case{Distill::Hard, 1.0, 0.5, "hard.tau1.alpha0.5"}}) {
    SCOPED_TRACE(c.key);
    auto student = golden(dict, "student").clone().requires_grad_(true);
    const auto loss = t::training_loss(student, teacher, targets, {c.kind, c.alpha, c.tau});
    loss.backward();
    EXPECT_NEAR(loss.item<double>(), golden(dict, std::string("loss.") + c.key).item<double>(), 1e-5);
    EXPECT_TRUE(torch::allclose(student.grad(), golden(dict, std::string("grad.") + c.key), 1e-5, 1e-6));
  }
}

TEST(DistillLoss, NoneOrNoTeacherIsTheSoftTargetCrossEntropy) {
  torch::manual_seed(3);
  const auto s = torch::randn({4, 10}), t = torch::randn({4, 10});
  const auto y = torch::softmax(torch::randn({4, 10}), -1);
  const auto ce = t::soft_cross_entropy(s, y);
  EXPECT_TRUE(torch::equal(t::training_loss(s, t, y, {Distill::None, 0.5, 1.0}), ce));
  EXPECT_TRUE(torch::equal(t::training_loss(s, torch::Tensor(), y, {Distill::Soft, 0.5, 1.0}), ce));
  // A teacher equal to the student adds nothing to the soft loss at alpha 1.
  EXPECT_NEAR(t::training_loss(s, s, y, {Distill::Soft, 1.0, 2.0}).item<double>(), 0.0, 1e-6);
}

TEST(Teacher, StartIsTheWeightsFileFrozenInEvalMode) {
  const auto request = golden_request();
  auto student = m::build_model(request, 0);
  t::Teacher teacher(vitslim::kTeacherStart, request, student->shape(), 0, torch::kCPU);
  EXPECT_EQ(teacher.fingerprint(), m::weights_hash(student));
  EXPECT_EQ(teacher.file(), request.weights);
  torch::manual_seed(5);
  const auto images = torch::randn({2, 3, 32, 32});
  student->eval();
  const auto logits = teacher.logits(images, false);
  EXPECT_FALSE(logits.requires_grad());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(logits, student->forward(images), 1e-6, 1e-6));
}

TEST(Teacher, FingerprintChangesWithAnyWeight) {
  auto a = m::build_model(golden_request(), 0);
  const std::string before = m::weights_hash(a);
  {
    torch::NoGradGuard no_grad;
    a->head->bias[3] += 1e-6f;
  }
  EXPECT_NE(m::weights_hash(a), before);
}

TEST(Teacher, RefusesAStudentWithOtherClassesNamingBothFiles) {
  auto request = golden_request();
  auto shape = m::build_model(request, 0)->shape();
  shape.num_classes = 7;
  try {
    t::Teacher teacher(request.weights, request, shape, 0, torch::kCPU);
    FAIL() << "a 10-class teacher taught a 7-class student";
  } catch (const vitslim::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("golden_vit_test.safetensors (10 classes"), std::string::npos) << what;
    EXPECT_NE(what.find("(7 classes"), std::string::npos) << what;
  }
}

TEST(Teacher, StartNeedsWeights) {
  vitslim::ModelRequest request;
  request.preset = "vit_test";
  auto shape = m::build_model(request, 0)->shape();
  EXPECT_THROW(t::Teacher(vitslim::kTeacherStart, request, shape, 0, torch::kCPU), vitslim::Error);
}
