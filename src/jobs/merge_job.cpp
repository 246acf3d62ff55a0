// `vitslim merge`: a training checkpoint at lambda 0 to the compact model, checked, optionally
// folded (train/merge_job.h does the work).
#include "train/merge_job.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  c.model.declare(o);
  declare_remove_layers(o, c.model.removed_layers, "not used: the checkpoint says which layers go");
  c.merge.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.merge.validate();
  if (!c.model.removed_layers.empty()) {
    throw Error("merge: the checkpoint says which layers go; --remove-layers is not used");
  }
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  train::run_merge(c.merge, c.runtime, mpi);
  return {};
}

}  // namespace

Job merge_job() {
  Job job;
  job.name = "merge";
  job.summary = "turn a training checkpoint at lambda 0 into the compact model (checked), optionally folded";
  job.declare = declare;
  job.validate = validate;
  job.run = run;
  job.launch_outputs = "--out={out}/compact.safetensors --json={out}/merge.json";
  return job;
}

}  // namespace vitslim
