// `vitslim eval`: top-1/top-5 accuracy and loss on a data split, sharded over MPI ranks
// (evaluation/evaluate.h does the work).
#include "dist/mpi_session.h"
#include "evaluation/evaluate.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void defaults(Config& c) { c.data.split = "test"; }

void declare(Options& o, Config& c) {
  declare_model(o, c);
  c.data.declare(o);
  c.eval.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  run_eval_job(c, mpi);
  return {};
}

}  // namespace

evaluation::EvalResult run_eval_job(const Config& c, const dist::MpiSession& mpi) {
  validate(c);
  return evaluation::run_eval({c.model, c.data, c.eval, c.compute, c.runtime}, mpi);
}

Job eval_job() {
  return make_job("eval", "top-1/top-5 accuracy on a data split, sharded over MPI ranks", declare, validate, run,
                  "--json={out}/eval.json", defaults);
}

}  // namespace vitslim
