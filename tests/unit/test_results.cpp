// Tests of the result types that own their file format (evaluation/eval_result.h,
// evaluation/bench.h, evaluation/tome_sweep.h): what is written reads back the same, and a file
// that is another job's, malformed or inconsistent is refused naming it.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "evaluation/bench.h"
#include "evaluation/eval_result.h"
#include "evaluation/tome_sweep.h"
#include "plan/report.h"
#include "test_util.h"

namespace vitslim::evaluation {
namespace {

std::string write(const vitslim::test::TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.path() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

using vitslim::test::error_of;

EvalResult sample_eval() {
  EvalResult r;
  r.counts = {10000, 9021, 9987, 2712.5};
  r.shape = "vit_fmnist";
  r.weights = "runs/x/final.safetensors";
  r.removed_layers = {2, 4, 5};
  r.data_set = "fashion-mnist";
  r.split = "test";
  r.mean = {0.286};
  r.std = {0.353};
  r.device = "cpu";
  r.world_size = 2;
  r.seconds = 3.5;
  return r;
}

TEST(Results, EvalResultReadsBackWhatWasWritten) {
  vitslim::test::TempDir dir;
  const EvalResult r = sample_eval();
  const EvalResult back = read_eval_result(write(dir, "eval.json", eval_json_text(r)), "test");
  EXPECT_EQ(back.counts.images, 10000);
  EXPECT_EQ(back.counts.top1, 9021);
  EXPECT_EQ(back.counts.top5, 9987);
  EXPECT_DOUBLE_EQ(back.counts.top1_percent(), 90.21);
  EXPECT_NEAR(back.counts.mean_loss(), 0.27125, 1e-15);
  EXPECT_EQ(back.removed_layers, r.removed_layers);
  EXPECT_EQ(back.data_set, "fashion-mnist");
  EXPECT_EQ(back.world_size, 2);
  EXPECT_EQ(back.mean, r.mean);
}

TEST(Results, EvalResultRefusesOtherJobsAndBadCounts) {
  vitslim::test::TempDir dir;
  const std::string other = write(dir, "bench.json", R"({"job": "bench", "ratios": {}})");
  EXPECT_NE(error_of([&] { read_eval_result(other, "pipeline"); }).find("not a result file of `vitslim eval`"),
            std::string::npos);
  nlohmann::json j = nlohmann::json::parse(eval_json_text(sample_eval()));
  j["top1_correct"] = 10001;
  const std::string bad = write(dir, "bad.json", j.dump());
  EXPECT_NE(error_of([&] { read_eval_result(bad, "pipeline"); }).find("inconsistent counts"), std::string::npos);
  j.erase("images");
  const std::string missing = write(dir, "missing.json", j.dump());
  const std::string e = error_of([&] { read_eval_result(missing, "pipeline"); });
  EXPECT_NE(e.find("malformed eval result"), std::string::npos);
  EXPECT_NE(e.find("missing.json"), std::string::npos);
  EXPECT_NE(error_of([&] { read_eval_result(dir.path() + "/none.json", "pipeline"); }).find("none.json: "),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_eval_result(dir.path(), "pipeline"); }).find("is a directory"), std::string::npos);
}

TEST(Results, BenchRatiosReadBackWhatWasWritten) {
  BenchRatios r;
  r.compared = true;
  r.params = 0.835;
  r.macs = 0.795;
  r.inference_speedup = 1.28;
  r.trained = true;
  r.train_speedup = 1.31;
  r.merged = true;
  r.merged_model = "pruned + ToMe";
  r.merged_macs = 0.6;
  r.merged_inference_speedup = 1.36;
  const BenchRatios back = ratios_from_json(ratios_json(r));
  EXPECT_TRUE(back.compared && back.trained && back.merged && !back.full_merged);
  EXPECT_EQ(back.params, r.params);
  EXPECT_EQ(back.train_speedup, r.train_speedup);
  EXPECT_EQ(back.merged_model, r.merged_model);
  EXPECT_EQ(back.merged_inference_speedup, r.merged_inference_speedup);
  const BenchRatios none = ratios_from_json(ratios_json(BenchRatios{}));
  EXPECT_FALSE(none.compared || none.trained || none.merged || none.full_merged);
  vitslim::test::TempDir dir;
  const nlohmann::json file = {{"job", "bench"}, {"ratios", ratios_json(r)}};
  EXPECT_EQ(read_bench_ratios(write(dir, "b.json", file.dump()), "test").macs, 0.795);
}

TEST(Results, TomeSweepChoiceReadsBackAsAPointOfTheSweep) {
  vitslim::test::TempDir dir;
  auto point = [](int64_t r, double top1) {
    return nlohmann::json{
        {"r", r},           {"start", 0},     {"r_per_block", {r, r}}, {"top1", top1}, {"images_per_s", 100 + r},
        {"macs", 1000 - r}, {"merges", true}, {"pareto", true}};
  };
  nlohmann::json j = {
      {"job", "tome-sweep"}, {"points", {point(0, 90), point(2, 89.9), point(4, 89)}}, {"chosen", point(2, 89.9)}};
  const TomeSweepResult result = read_tome_sweep(write(dir, "t.json", j.dump()), "test");
  ASSERT_EQ(result.points.size(), 3U);
  EXPECT_EQ(result.chosen, 1);
  EXPECT_EQ(result.best().r, 2);
  EXPECT_EQ(result.best().per_block, (std::vector<int64_t>{2, 2}));
  j["chosen"] = point(6, 88);
  EXPECT_NE(error_of([&] { read_tome_sweep(write(dir, "u.json", j.dump()), "test"); }).find("not among the points"),
            std::string::npos);
}

TEST(Results, PlanResultReadsBackWhatWasWritten) {
  vitslim::test::TempDir dir;
  plan::PlanResult r;
  plan::Candidate unpruned;
  unpruned.criterion = "none";
  unpruned.params = 300000;
  unpruned.macs = 7000000;
  unpruned.timings["torch"] = {10.0, 10.0};
  unpruned.probe_top1 = 90.5;
  plan::Candidate half = unpruned;
  half.criterion = "nose";
  half.blocks = {2, 4, 5};
  half.tome_r = 2;
  half.te = 0.25;
  half.timings["torch"] = {7.5, 10.0};
  half.probe_top1 = std::nullopt;
  half.on_front = true;
  r.candidates = {unpruned, half};
  r.runtimes = {"torch"};
  r.fronts["torch"] = {0, 1};
  r.choices["torch"] = {1, std::nullopt, "the fastest within the budget"};
  r.fixed_half = 1;
  r.skipped = {"remove {0}: refused"};
  plan::ReportContext ctx;
  ctx.out_dir = dir.path();
  ctx.target.speedup = 1.2;
  plan::write_plan_report(ctx, r);
  const plan::PlanResult back = plan::read_plan_result(dir.file("plan.json"), "test");
  ASSERT_EQ(back.candidates.size(), 2U);
  EXPECT_EQ(back.candidates[1].label(), "remove {2,4,5}, ToMe r=2");
  EXPECT_DOUBLE_EQ(back.candidates[1].timings.at("torch").speedup(), 10.0 / 7.5);
  EXPECT_FALSE(back.candidates[1].probe_top1.has_value());
  EXPECT_EQ(back.candidates[0].probe_top1, 90.5);
  EXPECT_TRUE(back.met());
  EXPECT_EQ(back.choices.at("torch").chosen, 1U);
  EXPECT_EQ(back.choices.at("torch").reason, "the fastest within the budget");
  EXPECT_EQ(back.fixed_half, 1U);
  EXPECT_EQ(back.fronts.at("torch"), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(back.skipped, r.skipped);
  EXPECT_NE(error_of([&] {
              plan::read_plan_result(write(dir, "x.json", R"({"job": "eval"})"), "test");
            }).find("not a result file of `vitslim plan`"),
            std::string::npos);
}

}  // namespace
}  // namespace vitslim::evaluation
