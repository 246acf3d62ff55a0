// `vitslim predict`: top-k classes of image files or a dataset split as CSV, optionally the logits
// or pooled features as .safetensors, batched over MPI ranks (deploy/predict.h does the work).
#include "deploy/predict.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void defaults(Config& c) { c.data.split = "test"; }

void declare(Options& o, Config& c) {
  declare_model(o, c);
  c.data.declare(o);
  c.predict.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  DataConfig data = c.data;  // predict names the classes by --class-index with any dataset
  data.class_index.clear();
  data.validate();
  c.predict.validate();
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  deploy::run_predict({c.model, c.data, c.predict, c.compute, c.runtime}, mpi);
  return {};
}

}  // namespace

Job predict_job() {
  return make_job("predict",
                  "top-k classes of image files or a dataset split as CSV (+ logits/features), over MPI ranks", declare,
                  validate, run, "--out={out}/predictions.csv", defaults);
}

}  // namespace vitslim
