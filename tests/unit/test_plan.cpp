// The plan job's decision logic with injected timings (plan/front.h): the Pareto front of
// (speed-up, |TE|), the choice for a speed-up, latency or accuracy target, the closest candidate
// when none meets it; the timing cache's round trip and refusals; the plan settings' checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "plan/front.h"
#include "plan/settings.h"
#include "plan/timing_cache.h"

namespace vitslim::plan {
namespace {

// A candidate with a timing on "rt": unpruned 10 ms, this one `ms`.
Candidate plan_candidate(std::vector<int64_t> blocks, double ms, double te, std::optional<double> top1 = {},
                         int64_t r = 0) {
  Candidate c;
  c.criterion = blocks.empty() ? "none" : "nose";
  c.blocks = std::move(blocks);
  c.tome_r = r;
  c.te = te;
  c.timings["rt"] = {ms, 10.0};
  c.probe_top1 = top1;
  return c;
}

// unpruned; {4} 1.1x; {4,5} 1.25x; {2,4,5} 1.5x; {4} + ToMe r=2 slower than {4,5} with more TE and r
// (dominated).
std::vector<Candidate> plan_fixture() {
  return {plan_candidate({}, 10.0, 0.0, 90.0), plan_candidate({4}, 10.0 / 1.1, 0.04, 89.9),
          plan_candidate({4, 5}, 8.0, 0.11, 89.5), plan_candidate({2, 4, 5}, 10.0 / 1.5, 0.30, 88.0),
          plan_candidate({4}, 9.0, 0.2, std::nullopt, 2)};
}

TEST(Plan, FrontDropsDominatedCandidatesFastestFirst) {
  const auto cs = plan_fixture();
  EXPECT_EQ(pareto_front(cs, "rt"), (std::vector<size_t>{3, 2, 1, 0}));
  EXPECT_TRUE(pareto_front(cs, "other").empty());
}

TEST(Plan, FrontKeepsOneOfATie) {
  std::vector<Candidate> cs = {plan_candidate({}, 10, 0), plan_candidate({1}, 8, 0.1), plan_candidate({2}, 8, 0.1)};
  EXPECT_EQ(pareto_front(cs, "rt"), (std::vector<size_t>{1, 0}));
}

TEST(Plan, SpeedTargetTakesTheMostAccurateThatReachesIt) {
  const auto cs = plan_fixture();
  const auto front = pareto_front(cs, "rt");
  Choice c = choose(cs, front, "rt", {1.2, {}, {}}, 90.0);
  ASSERT_TRUE(c.chosen);
  EXPECT_EQ(*c.chosen, 2u);  // {4,5}: 1.25x at 89.5 beats {2,4,5} at 88.0
  // Within a drop of 0.3 points nothing reaches 1.2x: the closest is the most accurate fast one.
  c = choose(cs, front, "rt", {1.2, {}, 0.3}, 90.0);
  EXPECT_FALSE(c.chosen);
  ASSERT_TRUE(c.closest);
  EXPECT_EQ(*c.closest, 2u);
  EXPECT_NE(c.reason.find("loses 0.5 points"), std::string::npos) << c.reason;
}

TEST(Plan, WithoutProbesTheLowestTransferEntropyWins) {
  auto cs = plan_fixture();
  for (auto& c : cs) c.probe_top1.reset();
  const Choice c = choose(cs, pareto_front(cs, "rt"), "rt", {1.05, {}, {}}, std::nullopt);
  ASSERT_TRUE(c.chosen);
  EXPECT_EQ(*c.chosen, 1u);  // {4}: 1.1x, the lowest |TE|
}

TEST(Plan, TokenMergingIsChosenOnlyWithAProbe) {
  // Unpruned + ToMe: TE 0 (no attention removed) and fast; unprobed it does not qualify.
  std::vector<Candidate> cs = {plan_candidate({}, 10, 0), plan_candidate({}, 7, 0, std::nullopt, 8),
                               plan_candidate({3}, 8, 0.2), plan_candidate({3, 5}, 6, 0.5)};
  const auto front = pareto_front(cs, "rt");
  EXPECT_EQ(front, (std::vector<size_t>{3, 1, 2, 0}));  // merging never dominates a candidate without it
  Choice c = choose(cs, front, "rt", {1.2, {}, {}}, std::nullopt);
  ASSERT_TRUE(c.chosen);
  EXPECT_EQ(*c.chosen, 2u);  // {3} at 1.25x: the lowest |TE| among those judged
  cs[1].probe_top1 = 80;
  cs[3].probe_top1 = 79;
  cs[0].probe_top1 = 81;
  c = choose(cs, front, "rt", {1.2, {}, {}}, 81.0);
  EXPECT_EQ(*c.chosen, 1u);  // probed, it wins on top-1
}

TEST(Plan, LatencyTarget) {
  const auto cs = plan_fixture();
  const Choice c = choose(cs, pareto_front(cs, "rt"), "rt", {{}, 7.0, {}}, 90.0);
  ASSERT_TRUE(c.chosen);
  EXPECT_EQ(*c.chosen, 3u);  // only {2,4,5} runs in 6.7 ms
}

TEST(Plan, UnreachableTargetNamesTheFastest) {
  const auto cs = plan_fixture();
  const Choice c = choose(cs, pareto_front(cs, "rt"), "rt", {2.0, {}, {}}, 90.0);
  EXPECT_FALSE(c.chosen);
  ASSERT_TRUE(c.closest);
  EXPECT_EQ(*c.closest, 3u);
  EXPECT_NE(c.reason.find("no candidate reaches 2x"), std::string::npos) << c.reason;
  EXPECT_NE(c.reason.find("remove {2,4,5}"), std::string::npos) << c.reason;
}

TEST(Plan, MaxDropAloneTakesTheFastestWithinIt) {
  const auto cs = plan_fixture();
  const auto front = pareto_front(cs, "rt");
  Choice c = choose(cs, front, "rt", {{}, {}, 0.6}, 90.0);
  ASSERT_TRUE(c.chosen);
  EXPECT_EQ(*c.chosen, 2u);
  c = choose(cs, front, "rt", {{}, {}, 2.5}, 90.0);
  EXPECT_EQ(*c.chosen, 3u);
  c = choose(cs, front, "rt", {{}, {}, 0.0}, 90.0);
  EXPECT_EQ(*c.chosen, 0u);  // nothing but the unpruned model is within 0 points
  EXPECT_THROW(choose(cs, front, "rt", {{}, {}, 0.5}, std::nullopt), Error);
}

TEST(Plan, CandidateKeyIsWhatSpeedDependsOn) {
  Candidate a = plan_candidate({0, 3}, 1, 0.1, {}, 4);
  Candidate b = a;
  b.criterion = "random";
  b.te = 0.7;
  EXPECT_EQ(a.key(), b.key());
  EXPECT_EQ(a.key(), "remove=0,3;r=4");
  EXPECT_EQ(a.label(), "remove {0,3}, ToMe r=4");
  EXPECT_EQ(b.label(), "remove {0,3} (random), ToMe r=4");
  EXPECT_EQ(plan_candidate({}, 1, 0).label(), "unpruned");
}

TEST(Plan, TimingCacheRoundTripAndRefusals) {
  const auto dir = std::filesystem::temp_directory_path() / "vitslim_plan_cache_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "timings.json").string();
  const std::string ctx = TimingCache::context("libtorch", "cpu", 2, 32, "shape");
  {
    TimingCache cache(path);
    EXPECT_FALSE(cache.find(ctx, "remove=1;r=0"));
    cache.put(ctx, "remove=1;r=0", {8.0, 10.0});
    cache.save();
  }
  TimingCache again(path);
  ASSERT_TRUE(again.find(ctx, "remove=1;r=0"));
  EXPECT_DOUBLE_EQ(again.find(ctx, "remove=1;r=0")->speedup(), 1.25);
  EXPECT_FALSE(again.find(TimingCache::context("libtorch", "cpu", 1, 32, "shape"), "remove=1;r=0"));
  std::ofstream(path) << "{\"kind\": \"something else\"}";
  EXPECT_THROW(TimingCache{path}, Error);
  std::ofstream(path) << R"({"kind": "vitslim plan timings", "entries": {"c": {"k": {"ms": -1, "unpruned_ms": 2}}}})";
  EXPECT_THROW(TimingCache{path}, Error);
  std::filesystem::remove_all(dir);
}

TEST(Plan, SettingsChecks) {
  PlanConfig p;
  EXPECT_THROW(p.validate(), Error);  // no target
  p.target_speedup = 1.2;
  EXPECT_NO_THROW(p.validate());
  p.target_latency_ms = 5;
  EXPECT_THROW(p.validate(), Error);  // two speed targets
  p.target_latency_ms.reset();
  p.runtimes = "libtorch,tensorrt";
  EXPECT_THROW(p.validate(), Error);
  p.runtimes = "openvino,openvino";
  EXPECT_THROW(p.validate(), Error);
  p.runtimes = "libtorch,onnxruntime,openvino-bf16";
  EXPECT_EQ(p.runtime_list().size(), 3u);
  p.max_drop = 0.5;
  p.probe_steps = 0;
  EXPECT_THROW(p.validate(), Error);  // a drop needs probes
  p.probe_steps = 10;
  p.criteria = "random,nose";
  EXPECT_THROW(p.validate(), Error);
}

}  // namespace
}  // namespace vitslim::plan
