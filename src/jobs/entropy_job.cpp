// `vitslim entropy`: per-block entropy of the attention and MLP branches and of the head over
// calibration images (entropy/entropy_job.h does the work).
#include "entropy/entropy_job.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  c.model.declare(o);
  declare_remove_layers(o, c.model.removed_layers, kRemoveLayersHelp);
  c.data.declare(o);
  c.entropy.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
  c.entropy.validate();
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  entropy::run_entropy(c.model, c.data, c.entropy, c.runtime, config_to_ini(c), mpi);
  return {};
}

}  // namespace

Job entropy_job() {
  Job job;
  job.name = "entropy";
  job.summary = "per-block entropy of attention and MLP branches over calibration images";
  job.declare = declare;
  job.validate = validate;
  job.run = run;
  job.launch_outputs = "--out={out}/entropy.h5 --json={out}/entropy.json";
  return job;
}

}  // namespace vitslim
