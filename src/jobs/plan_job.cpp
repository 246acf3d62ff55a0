// `vitslim plan`: what to remove to reach a measured speed-up, latency or accuracy budget on the
// runtime the model will run on (plan/planner.h does the work).
#include "core/error.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"
#include "plan/planner.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  c.model.declare(o, "plan", true);  // --tome-r and --tome-start: the plan's grid (plan/settings.h)
  o.add_refused("remove-layers", "not used: the plan chooses the layers",
                "plan: the plan chooses the layers; --remove-layers is not used");
  c.data.declare(o);
  c.data.declare_augment(o);
  c.plan.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
  c.plan.validate();
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  const plan::PlanResult result = run_plan_job(c, mpi);
  if (!result.met()) {
    throw Error(cat("plan: target not met: ", result.unmet_reason(), " (report: ", c.plan.out_dir, "/report.md)"));
  }
  return {};
}

}  // namespace

plan::PlanResult run_plan_job(const Config& c, const dist::MpiSession& mpi) {
  validate(c);
  plan::PlanInputs inputs{c.model, c.data, c.plan, c.compute, c.runtime, config_to_ini(c), {}};
  inputs.train_ini = [&c](const ModelRequest& m, const DataConfig& d, const TrainConfig& t) {
    return train_config_ini(c, m, d, t);
  };
  return plan::run_plan(inputs, mpi);
}

Job plan_job() {
  return make_job("plan", "what to remove to reach a measured speed-up, latency or accuracy budget on a runtime",
                  declare, validate, run, "--out-dir={out}");
}

}  // namespace vitslim
