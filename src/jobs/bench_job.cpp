// `vitslim bench`: full vs attention-removed model side by side (model/convert_bench.h does the work).
#include "jobs/common.h"
#include "jobs/job.h"
#include "model/convert_bench.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  declare_model(o, c);
  c.bench.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) { c.model.validate(c.model.removed_layers); }

JobResult run(const Config& c, const dist::MpiSession&) {
  model::run_bench(c.model, c.bench, c.compute, c.runtime);
  return {};
}

}  // namespace

Job bench_job() {
  return make_job("bench", "full vs attention-removed model: parameters, multiply-adds, images/s, peak memory", declare,
                  validate, run);
}

}  // namespace vitslim
