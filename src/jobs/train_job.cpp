// `vitslim train`: data-parallel fine-tuning while the chosen attention layers dilute into
// identity, then export (train/trainer.h does the work).
#include "core/log.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"
#include "train/trainer.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  c.model.declare(o);
  declare_remove_layers(o, c.train.dilute_layers,
                        "blocks whose attention dilutes into identity and is removed: 0,1,3 or SEARCH.json@RATIO");
  c.data.declare(o);
  c.data.declare_augment(o);
  c.train.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.train.dilute_layers);
  c.data.validate();
  c.train.validate();
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  const train::TrainResult result = run_train_job(c, mpi);
  JobResult out;
  out.stopped_by_signal = !result.finished;
  return out;
}

}  // namespace

train::TrainResult run_train_job(const Config& c, const dist::MpiSession& mpi) {
  validate(c);
  return train::run_training({c.model, c.data, c.train, c.compute, c.runtime, config_to_ini(c)}, mpi);
}

Job train_job() {
  Job job = make_job("train", "fine-tune data-parallel while chosen attention layers dilute into identity, then export",
                     declare, validate, run, "--out-dir={out} --resume");
  job.stops_at_signal = true;
  return job;
}

}  // namespace vitslim
