// The plan's outputs, written together (core/atomic_file.h OutputSet): plan.json (every candidate
// with its timings, TE and probe, the fronts and the choices), report.md (the front per runtime, the
// choice and why, NOSE at a fixed 50% beside it) and plan-train.ini (the chosen candidate's full
// fine-tune: `vitslim train --config plan-train.ini`), which is left out when the target is not met.
// No torch.
#pragma once

#include <cstdint>
#include <string>

#include "plan/planner.h"

namespace vitslim::plan {

struct ReportContext {
  std::string out_dir, shape, weights, device, config_ini;
  int64_t batch = 0;
  int threads = 0;
  Target target;
  int64_t probe_steps = 0, probe_images = 0, rounds = 0;
  std::string train_ini;  // of the first runtime's choice; empty when none
};

void write_plan_report(const ReportContext& ctx, const PlanResult& result);
// plan.json read back as the PlanResult that wrote it; Error naming `what` and the path when it is
// missing, malformed or another job's.
PlanResult read_plan_result(const std::string& path, const std::string& what);

}  // namespace vitslim::plan
