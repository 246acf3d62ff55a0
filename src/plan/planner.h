// `vitslim plan`: what to remove to reach the user's target, measured where the model will run
// (docs/method.md section 9). Candidates are the NOSE order at every removal count up to
// --max-ratio (from a search file, or searched here), each with every ToMe r of the grid, and the
// other criteria's picks when asked; each is timed in every --runtime against the unpruned model
// (timings cached in --out-dir), the Pareto front of (speed-up, |TE|) is probed by a short dilution
// fine-tune and an evaluation on held-out images, and the choice for the target is written as
// plan.json, report.md and a ready training configuration, plan-train.ini.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "data/settings.h"
#include "dist/mpi_session.h"
#include "model/request.h"
#include "plan/front.h"
#include "plan/settings.h"
#include "train/settings.h"

namespace vitslim::plan {

struct PlanInputs {
  ModelRequest model;
  DataConfig data;
  PlanConfig plan;
  ComputeConfig compute;
  RuntimeConfig runtime;
  std::string config_ini;  // the plan's resolved settings (recorded in plan.json and the search)
  // The INI text of a `vitslim train` run (the jobs layer owns the format): of the probes, and of
  // plan-train.ini for the chosen candidate.
  std::function<std::string(const ModelRequest&, const DataConfig&, const TrainConfig&)> train_ini;
};

struct PlanResult {
  std::vector<Candidate> candidates;  // [0]: the unpruned model
  std::vector<std::string> runtimes;  // names, in --runtime order
  std::map<std::string, std::vector<size_t>> fronts;
  std::map<std::string, Choice> choices;
  std::optional<double> unpruned_top1;  // its probe
  std::optional<size_t> fixed_half;     // NOSE at a fixed 50%, ToMe off (the paper's way), when a candidate
  std::vector<std::string> skipped;     // candidates left out, with the reason
  bool met() const;                     // every runtime has a choice
  std::string unmet_reason() const;     // the first runtime without one: why ("" when met)
};

// Runs the plan and writes its outputs (rank 0). Throws Error naming the flag or file on bad
// input; a target that no candidate meets is a result (met() false), its report written.
PlanResult run_plan(const PlanInputs& inputs, const dist::MpiSession& mpi);

}  // namespace vitslim::plan
