// `vitslim merge`: a training checkpoint at lambda 0 to the compact model, checked, optionally
// folded (train/merge_checkpoint.h does the work).
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"
#include "train/merge_checkpoint.h"

namespace vitslim {

namespace {

// No model options: the checkpoint's tensors and metadata say what the model is.
void declare(Options& o, Config& c) {
  o.add_refused("remove-layers", "not used: the checkpoint says which layers go",
                "merge: the checkpoint says which layers go; --remove-layers is not used");
  c.merge.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) { c.merge.validate(); }

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  run_merge_job(c, mpi);
  return {};
}

}  // namespace

void run_merge_job(const Config& c, const dist::MpiSession& mpi) {
  validate(c);
  train::run_merge({c.merge, c.runtime}, mpi);
}

Job merge_job() {
  return make_job("merge", "turn a training checkpoint at lambda 0 into the compact model (checked), optionally folded",
                  declare, validate, run, "--out={out}/compact.safetensors --json={out}/merge.json");
}

}  // namespace vitslim
