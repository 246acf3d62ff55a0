// Progress display of long loops on rank 0: on a terminal one line redrawn in place with a bar (at
// most 4 times a second); in a log file (stderr not a terminal) a plain line at most every
// `interval_seconds`, so logs stay readable and never go silent for long. Each line gives the
// position, the caller's status (loss, lr, images/s) and the time left at the rate since the
// label's first update. Nothing on other ranks or with --quiet. The clock is injectable (tests).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace vitslim {

class ProgressLine {
 public:
  using Clock = std::function<double()>;  // seconds, monotonic
  // terminal: -1 asks isatty(stderr).
  ProgressLine(bool enabled, double interval_seconds = 10.0, Clock clock = {}, int terminal = -1);
  // `done` of `total` with a status text. `force` prints a plain line regardless of the interval.
  void update(const std::string& label, int64_t done, int64_t total, const std::string& status, bool force = false);
  // Ends the in-place line (before other output).
  void finish();

  // "1h02m", "3m05s", "42s", "4.2s": a duration for people.
  static std::string duration_text(double seconds);

 private:
  std::string line(const std::string& label, int64_t done, int64_t total, const std::string& status, double now) const;

  bool enabled_, terminal_;
  double interval_;
  Clock clock_;
  std::string label_;  // the label whose rate is measured
  double start_time_ = 0, last_print_ = -1e300;
  int64_t start_done_ = 0;
  bool open_ = false;
};

}  // namespace vitslim
