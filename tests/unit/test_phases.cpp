// The per-phase step clock of `train --profile` with an injected clock: laps go to their phases,
// the first (warm-up) step and the time between steps are left out, the fence runs before every reading,
// a disabled clock records nothing, and the table and train.json map carry the sums.
#include <gtest/gtest.h>

#include "train/phases.h"

namespace vitslim::train {
namespace {

// Two steps of the same shape; `now` advances by the given seconds before each lap.
void run_step(PhaseClock& clock, double& now, double data, double forward, double backward, double optimizer) {
  clock.begin_step();
  now += data;
  clock.lap(Phase::Data);
  now += forward;
  clock.lap(Phase::Forward);
  now += backward;
  clock.lap(Phase::Backward);
  now += optimizer;
  clock.lap(Phase::Optimizer);
  clock.end_step();
}

TEST(Phases, LapsGoToTheirPhasesAfterTheWarmUpStep) {
  double now = 0;
  int fences = 0;
  PhaseClock clock(
      true, [&] { ++fences; }, [&] { return now; });
  run_step(clock, now, 5, 50, 50, 5);  // warm-up: left out
  run_step(clock, now, 0.001, 0.02, 0.04, 0.003);
  run_step(clock, now, 0.003, 0.02, 0.04, 0.001);
  EXPECT_EQ(clock.steps(), 2);
  EXPECT_NEAR(clock.seconds(Phase::Data), 0.004, 1e-12);
  EXPECT_NEAR(clock.seconds(Phase::Forward), 0.04, 1e-12);
  EXPECT_NEAR(clock.seconds(Phase::Backward), 0.08, 1e-12);
  EXPECT_NEAR(clock.seconds(Phase::Optimizer), 0.004, 1e-12);
  EXPECT_EQ(clock.seconds(Phase::Ema), 0);
  EXPECT_NEAR(clock.step_seconds(), 0.128, 1e-12);
  EXPECT_EQ(fences, 3 * 5);  // begin_step and four laps per step

  const auto map = clock.to_map();
  EXPECT_EQ(map.at("steps"), 2);
  EXPECT_NEAR(map.at("backward"), 0.08, 1e-12);
  EXPECT_EQ(map.count("all-reduce"), 1U);

  const std::string table = clock.table();
  EXPECT_NE(table.find("per-phase time of 2 steps"), std::string::npos) << table;
  EXPECT_NE(table.find("| data | 2.00 | 3.1% |"), std::string::npos) << table;
  EXPECT_NE(table.find("| backward | 40.00 | 62.5% |"), std::string::npos) << table;
  EXPECT_NE(table.find("| step | 64.00 | 100.0% |"), std::string::npos) << table;
  EXPECT_NE(table.find("step / (forward + backward): 1.067x"), std::string::npos) << table;
}

TEST(Phases, TimeBetweenStepsBelongsToNoPhase) {
  double now = 0;
  PhaseClock clock(true, {}, [&] { return now; });
  run_step(clock, now, 1, 1, 1, 1);
  clock.begin_step();
  now += 0.5;
  clock.lap(Phase::Record);
  clock.end_step();
  now += 30;  // a checkpoint between steps
  clock.begin_step();
  now += 0.25;
  clock.lap(Phase::Record);
  clock.end_step();
  EXPECT_EQ(clock.steps(), 2);
  EXPECT_NEAR(clock.seconds(Phase::Record), 0.75, 1e-12);
  EXPECT_NEAR(clock.step_seconds(), 0.75, 1e-12);
}

TEST(Phases, DisabledRecordsNothingAndNeverFences) {
  double now = 0;
  int fences = 0;
  PhaseClock clock(
      false, [&] { ++fences; }, [&] { return now; });
  for (int k = 0; k < 3; ++k) run_step(clock, now, 1, 1, 1, 1);
  EXPECT_FALSE(clock.enabled());
  EXPECT_EQ(clock.steps(), 0);
  EXPECT_EQ(clock.step_seconds(), 0);
  EXPECT_EQ(fences, 0);
}

TEST(Phases, OneStepRunSaysSoInsteadOfDividingByZero) {
  double now = 0;
  PhaseClock clock(true, {}, [&] { return now; });
  run_step(clock, now, 1, 1, 1, 1);
  EXPECT_EQ(clock.table(), "per-phase time: no step after the first (warm-up) one\n");
  EXPECT_STREQ(phase_name(Phase::AllReduce), "all-reduce");
}

}  // namespace
}  // namespace vitslim::train
