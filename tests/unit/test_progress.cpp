// The rank-0 progress line with an injected clock: in a log file one line at most every interval
// (never silent longer), with the time left at the rate since the loop's first update; forced
// lines; a new label restarts the rate; durations for people.
#include <gtest/gtest.h>

#include "core/progress.h"

namespace vitslim {
namespace {

TEST(Progress, LogLinesAtMostEveryIntervalWithTimeLeft) {
  double now = 100;
  ProgressLine p(
      true, 10.0, [&] { return now; }, 0);
  testing::internal::CaptureStderr();
  p.update("epoch 1/2", 0, 100, "");  // the first update prints
  now = 105;
  p.update("epoch 1/2", 10, 100, "loss 1.5");  // 5 s later: silent
  now = 110;
  p.update("epoch 1/2", 20, 100, "loss 1.2");  // 20 steps in 10 s: 80 left take 40 s
  now = 112;
  p.update("epoch 1/2", 25, 100, "loss 1.1", true);  // forced
  now = 130;
  p.update("epoch 2/2", 0, 100, "");  // a new loop: no rate yet
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out,
            "epoch 1/2 0/100\n"
            "epoch 1/2 20/100 loss 1.2, 40s left\n"
            "epoch 1/2 25/100 loss 1.1, 36s left\n"
            "epoch 2/2 0/100\n");
}

TEST(Progress, DisabledPrintsNothing) {
  ProgressLine p(
      false, 10.0, [] { return 0.0; }, 0);
  testing::internal::CaptureStderr();
  p.update("epoch 1/1", 1, 2, "x", true);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(Progress, DurationText) {
  EXPECT_EQ(ProgressLine::duration_text(42.4), "42s");
  EXPECT_EQ(ProgressLine::duration_text(185), "3m05s");
  EXPECT_EQ(ProgressLine::duration_text(3720), "1h02m");
  EXPECT_EQ(ProgressLine::duration_text(-3), "0.0s");
  EXPECT_EQ(ProgressLine::duration_text(4.24), "4.2s");
  EXPECT_EQ(ProgressLine::duration_text(9.96), "10s");
}

}  // namespace
}  // namespace vitslim
