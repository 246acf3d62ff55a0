// `vitslim bench`: full vs attention-removed model side by side (evaluation/bench.h does the work).
#include "evaluation/bench.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"

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
  run_bench_job(c);
  return {};
}

}  // namespace

evaluation::BenchRatios run_bench_job(const Config& c) {
  validate(c);
  return evaluation::run_bench({c.model, c.bench, c.compute, c.runtime});
}

Job bench_job() {
  return make_job("bench", "full vs attention-removed model: parameters, multiply-adds, images/s, peak memory", declare,
                  validate, run);
}

}  // namespace vitslim
