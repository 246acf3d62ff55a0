// `vitslim search`: NOSE, which attention layers to remove by transfer entropy to the head,
// scored over MPI ranks (search/coordinator.h does the work).
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/entries.h"
#include "jobs/job.h"
#include "search/coordinator.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  declare_model(o, c);
  c.data.declare(o);
  c.search.declare(o);
  c.compute.declare(o);
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
  run_search_job(c, mpi);
  return {};
}

}  // namespace

search::SearchResult run_search_job(const Config& c, const dist::MpiSession& mpi) {
  validate(c);
  return search::run_search({c.model, c.data, c.search, c.compute, c.runtime, config_to_ini(c)}, mpi);
}

Job search_job() {
  return make_job("search", "NOSE: choose attention layers to remove by transfer entropy, over MPI ranks", declare,
                  validate, run, "--out={out}/search.h5 --json={out}/search.json");
}

}  // namespace vitslim
