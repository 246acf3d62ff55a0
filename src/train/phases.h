// Per-phase wall time of the training step (`train --profile`): where a step's time goes between
// fetching the batch, the teacher, forward, backward, waiting for the gradient all-reduce, the
// optimizer (norm, clipping, AdamW), the EMA and the bookkeeping (trace rows, sync points,
// progress). The trainer calls lap(phase) as each phase ends; the time since the previous lap is
// that phase's. On a GPU the work is queued, so a fence (the device's synchronize) runs before each
// reading; that slows the run, which is why it is asked for. The first step of a run is left out
// (allocator and cache warm-up), and so is the time between end_step and the next begin_step
// (checkpoints, evaluation). Torch-free; the clock is injectable (tests).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace vitslim::train {

enum class Phase { Data, Teacher, Forward, Backward, AllReduce, Optimizer, Ema, Record };
inline constexpr int kPhaseCount = 8;
// "data", "teacher", "forward", "backward", "all-reduce", "optimizer", "ema", "record".
const char* phase_name(Phase phase);

class PhaseClock {
 public:
  using Clock = std::function<double()>;  // seconds, monotonic
  // Disabled: every call does nothing. `fence` (may be empty) runs before each clock reading.
  explicit PhaseClock(bool enabled, std::function<void()> fence = {}, Clock clock = {});
  bool enabled() const { return enabled_; }
  // Starts a step's first phase now.
  void begin_step();
  // The time since the last lap (or begin_step) goes to `phase`.
  void lap(Phase phase);
  // Ends the step: its laps are added to the totals, except the run's first step.
  void end_step();

  int64_t steps() const { return steps_; }  // steps in the totals
  double seconds(Phase phase) const { return total_[static_cast<size_t>(phase)]; }
  double step_seconds() const;  // the sum over the phases
  // phase name -> total seconds, plus "steps" (for train.json).
  std::map<std::string, double> to_map() const;
  // A Markdown table: phase, ms per step, share of the step; then the step and its ratio to
  // forward + backward alone (the trainer's overhead over the model's own arithmetic).
  std::string table() const;

 private:
  double now() const;

  bool enabled_;
  std::function<void()> fence_;
  Clock clock_;
  double mark_ = 0;
  int64_t seen_ = 0, steps_ = 0;
  std::array<double, kPhaseCount> current_{}, total_{};
};

}  // namespace vitslim::train
