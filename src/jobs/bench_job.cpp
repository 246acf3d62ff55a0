// `vitslim bench`: full vs attention-removed model side by side (model/model_jobs.h does the work).
#include "jobs/common.h"
#include "jobs/job.h"
#include "model/model_jobs.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  c.model.declare(o);
  declare_remove_layers(o, c.model.removed_layers, kRemoveLayersHelp);
  c.bench.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.bench.validate();
}

JobResult run(const Config& c, const dist::MpiSession&) {
  model::run_bench(c.model, c.bench, c.runtime);
  return {};
}

}  // namespace

Job bench_job() {
  Job job;
  job.name = "bench";
  job.summary = "full vs attention-removed model: parameters, multiply-adds, images/s, peak memory";
  job.declare = declare;
  job.validate = validate;
  job.run = run;
  return job;
}

}  // namespace vitslim
