// `vitslim eval`: top-1/top-5 accuracy and loss on a data split, sharded over MPI ranks
// (train/eval_job.h does the work).
#include "train/eval_job.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void defaults(Config& c) { c.data.split = "test"; }

void declare(Options& o, Config& c) {
  c.model.declare(o);
  declare_remove_layers(o, c.model.removed_layers, kRemoveLayersHelp);
  c.data.declare(o);
  c.eval.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  train::run_eval(c.model, c.data, c.eval, c.runtime, mpi);
  return {};
}

}  // namespace

Job eval_job() {
  Job job;
  job.name = "eval";
  job.summary = "top-1/top-5 accuracy on a data split, sharded over MPI ranks";
  job.defaults = defaults;
  job.declare = declare;
  job.validate = validate;
  job.run = run;
  job.launch_outputs = "--json={out}/eval.json";
  return job;
}

}  // namespace vitslim
