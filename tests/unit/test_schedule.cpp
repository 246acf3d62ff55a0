// Tests the fine-tuning schedules (train/schedule.h): warm-up + cosine learning rate and the
// dilution lambda per epoch and per step.
#include <gtest/gtest.h>

#include "train/schedule.h"

namespace t = vitslim::train;

TEST(Schedule, WarmupThenCosineToTheFloor) {
  t::LrSchedule s{1e-3, 1e-6, 1e-5, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-6);
  EXPECT_NEAR(s.at(5), 1e-6 + 0.5 * (1e-3 - 1e-6), 1e-15);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_NEAR(s.at(60), 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-15);  // half way through the cosine
  EXPECT_NEAR(s.at(110), 1e-5, 1e-15);
  EXPECT_NEAR(s.at(500), 1e-5, 1e-15);               // never below the floor
  EXPECT_DOUBLE_EQ(t::scaled_lr(5e-4, 2048), 2e-3);  // the paper's 8 x 256
}

TEST(Schedule, LambdaPerEpochAndPerStep) {
  t::LambdaSchedule per_epoch{299, 100, false};
  EXPECT_DOUBLE_EQ(per_epoch.at(0, 50), 1.0);
  EXPECT_NEAR(per_epoch.at(150, 15050), 1.0 - 150.0 / 299.0, 1e-12);
  EXPECT_DOUBLE_EQ(per_epoch.at(299, 29900), 0.0);
  EXPECT_DOUBLE_EQ(per_epoch.at(399, 39900), 0.0);
  t::LambdaSchedule per_step{4, 10, true};
  EXPECT_DOUBLE_EQ(per_step.at(0, 5), 1.0 - 0.5 / 4.0);
  EXPECT_DOUBLE_EQ(per_step.at(3, 39), 1.0 - 3.9 / 4.0);
  EXPECT_DOUBLE_EQ(per_step.at(4, 40), 0.0);
}
