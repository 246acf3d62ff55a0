// Stop requests by signal: while a StopSignals object lives, SIGUSR1 and SIGTERM (what Slurm
// sends before preemption or at the time limit) only set a flag that long-running jobs poll at
// safe points (the trainer: every step boundary) to checkpoint and exit cleanly. main holds one
// for the whole run of a job that polls (Job::stops_at_signal), armed before MPI starts. The
// previous handlers come back when it is destroyed.
#pragma once

namespace vitslim {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The signal number received first, or 0.
  static int received();
};

}  // namespace vitslim
