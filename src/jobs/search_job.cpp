// `vitslim search`: NOSE, which attention layers to remove by transfer entropy to the head,
// scored over MPI ranks (search/search_job.h does the work).
#include "search/search_job.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  c.model.declare(o);
  declare_remove_layers(o, c.model.removed_layers, kRemoveLayersHelp);
  c.data.declare(o);
  c.search.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.data.validate();
  c.search.validate();
  if (c.data.calib_images < c.data.batch_size) {
    throw Error(cat("--calib-images ", c.data.calib_images, " is smaller than one batch (--batch-size ",
                    c.data.batch_size, ")"));
  }
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  search::run_search({c.model, c.data, c.search, c.runtime, config_to_ini(c)}, mpi);
  return {};
}

}  // namespace

Job search_job() {
  Job job;
  job.name = "search";
  job.summary = "NOSE: choose attention layers to remove by transfer entropy, over MPI ranks";
  job.declare = declare;
  job.validate = validate;
  job.run = run;
  job.launch_outputs = "--out={out}/search.h5 --json={out}/search.json";
  return job;
}

}  // namespace vitslim
