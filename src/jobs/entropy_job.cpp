// `vitslim entropy`: per-block entropy of the attention and MLP branches and of the head over
// calibration images (entropy/measure.h does the work).
#include "dist/mpi_session.h"
#include "entropy/measure.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  declare_model(o, c);
  c.data.declare(o);
  c.entropy.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
  c.entropy.validate();
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  run_entropy_job(c, mpi);
  return {};
}

}  // namespace

void run_entropy_job(const Config& c, const dist::MpiSession& mpi) {
  validate(c);
  entropy::run_entropy({c.model, c.data, c.entropy, c.compute, c.runtime, config_to_ini(c)}, mpi);
}

Job entropy_job() {
  return make_job("entropy", "per-block entropy of attention and MLP branches over calibration images", declare,
                  validate, run, "--out={out}/entropy.h5 --json={out}/entropy.json");
}

}  // namespace vitslim
