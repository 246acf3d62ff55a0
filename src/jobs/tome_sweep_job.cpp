// `vitslim tome-sweep`: token merging tuned for a model over r and the start block, with the
// Pareto front and the fastest setting within an accuracy budget (evaluation/tome_sweep.h does the work).
#include "dist/mpi_session.h"
#include "evaluation/tome_sweep.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void defaults(Config& c) { c.data.split = "test"; }

void declare(Options& o, Config& c) {
  declare_model(o, c, "tome-sweep");
  c.data.declare(o);
  c.tome_sweep.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  run_tome_sweep_job(c, mpi);
  return {};
}

}  // namespace

evaluation::TomeSweepResult run_tome_sweep_job(const Config& c, const dist::MpiSession& mpi) {
  validate(c);
  return evaluation::run_tome_sweep({c.model, c.data, c.tome_sweep, c.compute, c.runtime}, mpi);
}

Job tome_sweep_job() {
  return make_job("tome-sweep", "token merging tuned for a model: top-1, images/s and MACs over r and start block",
                  declare, validate, run, "--json={out}/tome_sweep.json --csv={out}/tome_sweep.csv", defaults);
}

}  // namespace vitslim
